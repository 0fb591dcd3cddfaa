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
