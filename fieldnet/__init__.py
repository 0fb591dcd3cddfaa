"""fieldnet — field theory of wide neural networks.

Pipeline: network spec -> symbolic derivation (sympy) -> recursions -> LaTeX / numeric evaluation,
with Monte Carlo ensembles of finite-width networks as the independent check.

    import fieldnet as fn
    net = fn.DeepNetwork(depth=3, activation="relu", weight_var=2.0, bias_var=0.0)
    print(fn.mean_field_recursion("relu"))     # the derived recursion
    res = fn.kernels(net, X)                   # res.nngp, res.ntk: (L+1, N, N)
"""

__version__ = "0.1.0"

from fieldnet.errors import ActivationError, DivergenceError, FieldnetError, ParameterError

# Public names and their modules, imported on first access (PEP 562): ``import fieldnet`` stays
# cheap, and computing kernels from the on-disk cache imports neither sympy nor scipy.
_LAZY = {
    "KernelResult": "fieldnet.numeric.kernels", "kernels": "fieldnet.numeric.kernels",
    "DeepNetwork": "fieldnet.spec",
    "Activation": "fieldnet.symbolic.activations", "get_activation": "fieldnet.symbolic.activations",
    "gaussian_expectation": "fieldnet.symbolic.expectation",
    "GaussianExpectation": "fieldnet.symbolic.nodes", "LayerQuantity": "fieldnet.symbolic.nodes",
    "Recursion": "fieldnet.symbolic.recursions", "mean_field_recursion": "fieldnet.symbolic.recursions",
    "SingleInputSolution": "fieldnet.symbolic.solve", "solve_single_input": "fieldnet.symbolic.solve",
    "latex": "fieldnet.export.latex", "latex_document": "fieldnet.export.latex",
    "finite_width_recursion": "fieldnet.symbolic.finite_width",
    "ntk_finite_width_recursion": "fieldnet.symbolic.finite_width",
    "kstar_zero_asymptotics": "fieldnet.symbolic.asymptotics",
    "scale_invariant_solution": "fieldnet.symbolic.asymptotics",
    "FiniteWidthResult": "fieldnet.analysis.finite_width", "finite_width": "fieldnet.analysis.finite_width",
    **dict.fromkeys(["CriticalLine", "SignalPropagation", "critical_line", "critical_point", "critical_weight_var",
                     "fixed_point_c", "fixed_point_q", "signal_propagation"], "fieldnet.analysis.criticality"),
    "UniversalityClass": "fieldnet.analysis.universality", "universality_class": "fieldnet.analysis.universality",
    "PartialJacobians": "fieldnet.analysis.jacobians", "partial_jacobians": "fieldnet.analysis.jacobians",
    "RecurrentNetwork": "fieldnet.spec", "recurrent_mean_field_recursion": "fieldnet.symbolic.recurrent",
    **dict.fromkeys(["RecurrentResult", "recurrent_kernel", "recurrent_finite_width", "ConvergenceComparison",
                     "convergence_comparison"], "fieldnet.analysis.recurrent"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fieldnet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Activation", "ActivationError", "DeepNetwork", "DivergenceError", "FieldnetError", "GaussianExpectation",
    "KernelResult", "LayerQuantity", "ParameterError", "Recursion", "gaussian_expectation", "get_activation",
    "kernels", "latex", "latex_document", "mean_field_recursion", "SingleInputSolution", "solve_single_input",
    "CriticalLine", "PartialJacobians", "SignalPropagation", "UniversalityClass", "critical_line", "critical_point",
    "critical_weight_var", "fixed_point_c", "fixed_point_q", "partial_jacobians", "signal_propagation",
    "universality_class", "FiniteWidthResult", "finite_width", "finite_width_recursion",
    "ntk_finite_width_recursion", "kstar_zero_asymptotics", "scale_invariant_solution",
    "RecurrentNetwork", "RecurrentResult", "recurrent_kernel", "recurrent_finite_width", "recurrent_mean_field_recursion",
    "ConvergenceComparison", "convergence_comparison",
]
