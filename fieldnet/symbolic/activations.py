"""Activations: each one is a sympy expression in the variable ``x``.

Built-in names (parameters in parentheses, e.g. ``leaky_relu(0.1)``):

========================  ===================================================
``linear``                x
``relu``                  max(0, x)
``leaky_relu(alpha)``     x for x > 0, alpha x for x < 0 (alpha = 0.01 if omitted)
``abrelu(a, b)``          a x for x > 0, b x for x < 0
``step``                  Heaviside step Theta(x)
``sign``                  sign(x)
``abs``                   |x|
``erf``                   erf(x)
``tanh``                  tanh(x)
``sigmoid``               1 / (1 + e^{-x})
``sin``, ``cos``, ``exp`` sin(x), cos(x), e^x
``gelu``                  x Phi(x) = x (1 + erf(x / sqrt 2)) / 2   (exact, not the tanh approximation)
``silu`` / ``swish``      x sigmoid(x)
``softplus``              log(1 + e^x)
``monomial(k)``           x^k
========================  ===================================================

Anything else is parsed as a sympy expression in ``x`` (``"x*erf(x)"``, ``"x**3 - x"``), or pass
a sympy expression directly (``Activation.from_expr(sympy.tanh(x))``). Derivatives always come
from sympy.

sympy is imported on first use: a built-in name without parameters (``"relu"``) gives an
:class:`Activation` whose expression is built when it is first needed, so that numeric kernels
loaded from the on-disk cache (:mod:`fieldnet.numeric.lowering`) run without importing sympy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from fieldnet.errors import ActivationError


@lru_cache(maxsize=1)
def _symbol_x():
    import sympy as sp

    return sp.Symbol("x", real=True)


def __getattr__(name):
    """``x``, the activation's variable (a sympy Symbol), created with sympy's import on first use."""
    if name == "x":
        return _symbol_x()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _abrelu(a, b):
    """a x for x > 0, b x for x < 0, written with Max so that sympy's derivatives carry the kink."""
    import sympy as sp

    x = _symbol_x()
    return b * x + (a - b) * sp.Max(0, x)


# name: number of parameters (the expressions are in _builtin_table)
_BUILTIN_PARAMS = {"linear": 0, "relu": 0, "leaky_relu": 1, "abrelu": 2, "step": 0, "sign": 0, "abs": 0, "erf": 0,
                   "tanh": 0, "sigmoid": 0, "sin": 0, "cos": 0, "exp": 0, "gelu": 0, "silu": 0, "swish": 0,
                   "softplus": 0, "monomial": 1}


def _builtin_table():
    import sympy as sp

    x = _symbol_x()
    half = sp.Rational(1, 2)
    return {
        "linear": (0, lambda: x),
        "relu": (0, lambda: sp.Max(0, x)),
        "leaky_relu": (1, lambda alpha=sp.Rational(1, 100): _abrelu(1, alpha)),
        "abrelu": (2, lambda a, b: _abrelu(a, b)),
        "step": (0, lambda: sp.Heaviside(x)),
        "sign": (0, lambda: sp.sign(x)),
        "abs": (0, lambda: sp.Abs(x)),
        "erf": (0, lambda: sp.erf(x)),
        "tanh": (0, lambda: sp.tanh(x)),
        "sigmoid": (0, lambda: 1 / (1 + sp.exp(-x))),
        "sin": (0, lambda: sp.sin(x)),
        "cos": (0, lambda: sp.cos(x)),
        "exp": (0, lambda: sp.exp(x)),
        "gelu": (0, lambda: x * (1 + sp.erf(x / sp.sqrt(2))) * half),
        "silu": (0, lambda: x / (1 + sp.exp(-x))),
        "swish": (0, lambda: x / (1 + sp.exp(-x))),
        "softplus": (0, lambda: sp.log(1 + sp.exp(x))),
        "monomial": (1, lambda k: x ** k),
    }


BUILTIN_NAMES = tuple(_BUILTIN_PARAMS)

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*)\s*(?:\((.*)\))?\s*$")


def _allowed():
    """The names a user expression may use; nothing else is resolvable by the parser."""
    import sympy as sp

    return {
        "x": _symbol_x(), "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "erf": sp.erf, "erfc": sp.erfc,
        "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "sin": sp.sin, "cos": sp.cos,
        "atan": sp.atan, "arctan": sp.atan, "Abs": sp.Abs, "abs": sp.Abs, "Max": sp.Max, "max": sp.Max,
        "Min": sp.Min, "min": sp.Min, "Heaviside": sp.Heaviside, "sign": sp.sign,
        "Piecewise": sp.Piecewise, "pi": sp.pi, "E": sp.E, "Rational": sp.Rational,
    }


def _parse_number(text: str, name: str):
    """A parameter as an exact number: decimals become rationals (0.1 -> 1/10)."""
    import sympy as sp

    text = text.strip()
    try:
        value = sp.Rational(text)
    except (TypeError, ValueError):
        try:
            value = sp.sympify(text, locals={"pi": sp.pi, "E": sp.E, "sqrt": sp.sqrt})
        except (sp.SympifyError, SyntaxError, TypeError) as exc:
            raise ActivationError(f"activation {name}: parameter {text!r} is not a number") from exc
    if not (isinstance(value, sp.Expr) and value.is_number and value.is_real):
        raise ActivationError(f"activation {name}: parameter {text!r} is not a real number")
    return value


@dataclass(frozen=True)
class _Builtin:
    """Stands for the expression of a built-in activation without parameters until it is needed."""

    key: str

    def build(self):
        return _builtin_table()[self.key][1]()


@dataclass(frozen=True)
class Activation:
    """An activation function phi(x) as a sympy expression in :data:`x`.

    ``definition`` is the expression, or for a built-in name without parameters a placeholder
    from which :attr:`expr` is built (and kept) on first use."""

    name: str
    definition: object
    params: tuple = field(default=())

    def __post_init__(self):
        # sympy differentiates Piecewise branch-wise (no delta at a jump); the Heaviside form
        # differentiates distributionally, which Gaussian averages need
        if not isinstance(self.definition, _Builtin):
            import sympy as sp

            from fieldnet.symbolic.distributions import piecewise_to_heaviside

            if self.definition.has(sp.Piecewise):
                object.__setattr__(self, "definition", piecewise_to_heaviside(self.definition, _symbol_x()))

    @property
    def expr(self):
        """phi(x), a sympy expression in :data:`x`."""
        if not isinstance(self.definition, _Builtin):
            return self.definition
        if "_built" not in self.__dict__:
            object.__setattr__(self, "_built", self.definition.build())
        return self.__dict__["_built"]

    @property
    def builtin(self) -> str | None:
        """The name of a built-in activation made from its name without parameters (``"relu"``),
        else None (also for an expression that happens to be called "relu")."""
        return self.definition.key if isinstance(self.definition, _Builtin) else None

    def __eq__(self, other):
        if not isinstance(other, Activation):
            return NotImplemented
        if (self.name, self.params) != (other.name, other.params):
            return False
        return (self.builtin is not None and other.builtin is not None) or self.expr == other.expr

    def __hash__(self):
        return hash((self.name, self.params))

    @classmethod
    def from_expr(cls, expr, name: str | None = None) -> "Activation":
        import sympy as sp

        x = _symbol_x()
        expr = sp.sympify(expr)
        free = expr.free_symbols
        if len(free) > 1:
            raise ActivationError(
                f"activation must be a function of one variable, got {expr} with {sorted(map(str, free))}")
        if free and free != {x}:
            expr = expr.subs(next(iter(free)), x)
        return cls(name or str(expr), expr)

    def derivative(self, order: int = 1):
        """phi^{(order)}(x) (derivatives of kinks give Heaviside / DiracDelta terms)."""
        import sympy as sp

        return sp.diff(self.expr, _symbol_x(), order)

    def __call__(self, arg):
        return self.expr.subs(_symbol_x(), arg)

    def latex(self) -> str:
        import sympy as sp

        return sp.latex(self.expr)

    def __str__(self):
        return self.name


def get_activation(spec) -> Activation:
    """An :class:`Activation` from a name (``"relu"``, ``"leaky_relu(0.1)"``), an expression
    string in ``x`` (``"x*erf(x)"``), a sympy expression, or an existing activation."""
    if isinstance(spec, Activation):
        return spec
    match = _CALL.match(spec) if isinstance(spec, str) else None
    if match and match.group(2) is None and _BUILTIN_PARAMS.get(match.group(1).lower()) == 0:
        return Activation(match.group(1).lower(), _Builtin(match.group(1).lower()))
    import sympy as sp

    if isinstance(spec, sp.Basic):
        return Activation.from_expr(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ActivationError(f"activation: expected a name or an expression in x, got {spec!r}")
    table = _builtin_table()
    if match and match.group(1).lower() in table and (
            match.group(2) is None or table[match.group(1).lower()][0] > 0):
        key = match.group(1).lower()
        n_params, build = table[key]
        raw = match.group(2)
        args = [] if raw is None or not raw.strip() else [a for a in raw.split(",")]
        if len(args) > n_params or (key in ("abrelu", "monomial") and len(args) != n_params):
            raise ActivationError(
                f"activation {key} takes {n_params} parameter(s), got {len(args)} in {spec!r}")
        values = tuple(_parse_number(a, key) for a in args)
        if key == "monomial" and not (values[0].is_integer and values[0] >= 1):
            raise ActivationError(f"activation monomial(k): k must be a positive integer, got {values[0]}")
        name = key if not values else f"{key}({', '.join(str(v) for v in values)})"
        return Activation(name, build(*values), values)
    try:
        return _parse_user_expression(spec)
    except ActivationError:
        if match and match.group(1).lower() in table:
            raise ActivationError(f"activation {match.group(1).lower()} takes no parameters, got {spec!r}") from None
        raise


def _parse_user_expression(text: str) -> Activation:
    import sympy as sp
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations

    allowed = _allowed()
    if match := _CALL.match(text):
        if match.group(2) is None and match.group(1) not in allowed:
            raise ActivationError(
                f"activation: unknown name {text!r}; known: {', '.join(BUILTIN_NAMES)}, "
                "or an expression in x such as 'x*erf(x)'")
    try:
        expr = parse_expr(text, local_dict=allowed, global_dict={"__builtins__": {}, **_sympy_core()},
                          transformations=standard_transformations)
    except Exception as exc:  # the parser raises many types; report one clear line
        raise ActivationError(f"activation: cannot parse {text!r} as an expression in x ({exc})") from exc
    if not isinstance(expr, sp.Expr):
        raise ActivationError(f"activation: {text!r} is not an expression")
    unknown = {s for s in expr.free_symbols if s != allowed["x"]}
    undefined = {f.func for f in expr.atoms(sp.Function) if isinstance(f.func, sp.core.function.UndefinedFunction)}
    if unknown or undefined:
        names = sorted(str(s) for s in unknown | undefined)
        raise ActivationError(
            f"activation: {text!r} uses unknown name(s) {', '.join(names)}; "
            f"known activations: {', '.join(BUILTIN_NAMES)}; expressions may use only x")
    return Activation(text.strip(), expr)


def _sympy_core():
    import sympy as sp

    return {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol,
            "Function": sp.Function}
