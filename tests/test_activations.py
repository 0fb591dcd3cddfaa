"""Activation registry: names, parameters, user expressions, and clear errors."""

import pytest
import sympy as sp

from fieldnet import ActivationError, get_activation
from fieldnet.symbolic.activations import BUILTIN_NAMES, x


@pytest.mark.parametrize("name", [n for n in BUILTIN_NAMES if n not in ("abrelu", "monomial")])
def test_every_builtin_name_parses_to_a_function_of_x(name):
    act = get_activation(name)
    assert act.expr.free_symbols == {x} or act.expr.free_symbols == set()
    assert act.name == name


@pytest.mark.parametrize("name, at, value", [
    ("relu", 2, 2), ("relu", -3, 0), ("leaky_relu(0.1)", -2, sp.Rational(-1, 5)), ("leaky_relu", -1, sp.Rational(-1, 100)),
    ("abrelu(2, -0.5)", 3, 6), ("abrelu(2, -0.5)", -4, 2), ("abs", -2, 2), ("step", 1, 1), ("step", -1, 0),
    ("sign", -5, -1), ("monomial(3)", 2, 8), ("linear", 7, 7), ("exp", 0, 1),
])
def test_values(name, at, value):
    assert get_activation(name)(at) == value


def test_gelu_is_exact_x_Phi_x():
    g = get_activation("gelu").expr
    assert sp.simplify(g - x * (1 + sp.erf(x / sp.sqrt(2))) / 2) == 0


def test_silu_and_swish_agree():
    assert sp.simplify(get_activation("silu").expr - get_activation("swish").expr) == 0


def test_decimal_parameters_become_exact_rationals():
    assert get_activation("leaky_relu(0.1)").params == (sp.Rational(1, 10),)


def test_user_expression_and_sympy_expression():
    act = get_activation("x*erf(x) - x**3")
    assert sp.simplify(act.expr - (x * sp.erf(x) - x ** 3)) == 0
    y = sp.Symbol("y")
    assert get_activation(sp.tanh(2 * y)).expr == sp.tanh(2 * x)


def test_derivatives_come_from_sympy():
    assert get_activation("relu").derivative() == sp.Heaviside(x)
    assert sp.simplify(get_activation("tanh").derivative() - (1 - sp.tanh(x) ** 2)) == 0


@pytest.mark.parametrize("bad, words", [
    ("foo", "unknown name 'foo'"), ("relu(2)", "takes no parameters"), ("monomial(1.5)", "positive integer"),
    ("abrelu(1)", "takes 2 parameter"), ("x*y", "unknown name(s) y"), ("exp(", "cannot parse"),
    ("leaky_relu(a)", "not a real number"), ("f(x)", "unknown name(s) f"), ("", "expected a name"),
])
def test_bad_activations_raise_clear_errors(bad, words):
    with pytest.raises(ActivationError, match="activation") as info:
        get_activation(bad)
    assert words in str(info.value)


def test_two_variable_sympy_expression_rejected():
    a, b = sp.symbols("a b")
    with pytest.raises(ActivationError, match="one variable"):
        get_activation(a * b)
