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
from fieldnet.numeric.kernels import KernelResult, kernels
from fieldnet.spec import DeepNetwork
from fieldnet.symbolic.activations import Activation, get_activation
from fieldnet.symbolic.expectation import gaussian_expectation
from fieldnet.symbolic.nodes import GaussianExpectation, LayerQuantity
from fieldnet.symbolic.recursions import Recursion, mean_field_recursion
from fieldnet.symbolic.solve import SingleInputSolution, solve_single_input
from fieldnet.export.latex import latex, latex_document
from fieldnet.symbolic.finite_width import finite_width_recursion, ntk_finite_width_recursion
from fieldnet.symbolic.asymptotics import kstar_zero_asymptotics, scale_invariant_solution
from fieldnet.analysis.finite_width import FiniteWidthResult, finite_width
from fieldnet.analysis.criticality import (CriticalLine, SignalPropagation, critical_line, critical_point,
                                           critical_weight_var, fixed_point_c, fixed_point_q, signal_propagation)
from fieldnet.analysis.universality import UniversalityClass, universality_class
from fieldnet.analysis.jacobians import PartialJacobians, partial_jacobians
from fieldnet.spec import RecurrentNetwork
from fieldnet.symbolic.recurrent import recurrent_mean_field_recursion
from fieldnet.analysis.recurrent import (ConvergenceComparison, RecurrentResult, convergence_comparison,
                                         recurrent_finite_width, recurrent_kernel)

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
