"""Exceptions raised by fieldnet.

Every user-facing error is a :class:`FieldnetError` (a ``ValueError``) whose message names
the offending parameter, so the command line can print it as one line.
"""


class FieldnetError(ValueError):
    """Base class: invalid input or a quantity that cannot be computed."""


class ParameterError(FieldnetError):
    """A parameter is outside its allowed range (message names it and the range)."""


class ActivationError(FieldnetError):
    """An activation name or expression could not be understood."""


class DivergenceError(FieldnetError):
    """A Gaussian integral diverges or overflows (e.g. the NTK of a step activation)."""


def require(condition, parameter, message):
    """Raise ``ParameterError('<parameter>: <message>')`` unless ``condition`` holds."""
    if not condition:
        raise ParameterError(f"{parameter}: {message}")


def positive_number(value, name, *, allow_zero=False) -> float:
    """``float(value)`` if it is a finite number > 0 (>= 0 with ``allow_zero``), else ParameterError naming ``name``."""
    import math

    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}: expected a number, got {value!r}") from None
    require(math.isfinite(v), name, f"must be finite, got {value}")
    if allow_zero:
        require(v >= 0, name, f"must be >= 0, got {value}")
    else:
        require(v > 0, name, f"must be > 0, got {value}")
    return v
