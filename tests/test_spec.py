"""Network spec validation: every bad value names its parameter."""

import math

import pytest

from fieldnet import DeepNetwork, ParameterError


def test_defaults_and_per_layer_values():
    net = DeepNetwork(2, "relu", weight_var=[1, 2, 3], bias_var=0.5)
    assert net.weight_var == (1.0, 2.0, 3.0) and net.bias_var == (0.5,) * 3
    assert net.n_layers == 3 and not net.uniform


def test_ntk_rates_ntk_and_standard():
    net = DeepNetwork(2, "relu", weight_var=2.0, bias_var=0.1, learning_rate=0.5)
    assert net.ntk_rates(7) == ((1.0,) * 3, (0.05,) * 3)
    std = DeepNetwork(2, "relu", weight_var=2.0, widths=(10, 20), parameterization="standard", learning_rate=0.5)
    assert std.ntk_rates(7) == ((3.5, 5.0, 10.0), (0.5,) * 3)  # lambda_W^(l) = eta n_{l-1}, lambda_b = eta


@pytest.mark.parametrize("kwargs, param", [
    (dict(depth=-1), "depth"), (dict(depth=1.5), "depth"), (dict(depth=True), "depth"),
    (dict(weight_var=0), "weight_var"), (dict(weight_var=-2), "weight_var"), (dict(weight_var=math.nan), "weight_var"),
    (dict(weight_var=[1, 2]), "weight_var"), (dict(weight_var="big"), "weight_var"),
    (dict(bias_var=-0.1), "bias_var"), (dict(bias_var=math.inf), "bias_var"),
    (dict(widths=(0, 3)), "widths"), (dict(widths=(3,)), "widths"), (dict(input_dim=0), "input_dim"),
    (dict(parameterization="mup"), "parameterization"), (dict(learning_rate=0), "learning_rate"),
])
def test_bad_values_name_the_parameter(kwargs, param):
    args = dict(depth=2, activation="relu")
    args.update(kwargs)
    with pytest.raises(ParameterError, match=f"^{param}:"):
        DeepNetwork(**args)


def test_standard_parameterization_needs_widths():
    with pytest.raises(ParameterError, match="^widths:"):
        DeepNetwork(2, "relu", parameterization="standard").ntk_rates(4)
