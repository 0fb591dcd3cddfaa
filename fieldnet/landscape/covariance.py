"""The covariance xi(q) of a random MLP seen as a Gaussian field over its inputs (alpha -> infinity).

Set-up (THEORY.md 8.2-8.3; our reconstruction of Winer & Hanin, arXiv:2503.23982): inputs x on the
sphere |x|^2 = N, hidden widths N_l = alpha_l N, and

    z^1 = sqrt(C_W) W^1 x / sqrt(N) + b^1,   z^l = sqrt(C_W) W^l phi(z^{l-1}) / sqrt(N_{l-1}) + b^l,
    f = sqrt(C_v) v . phi(z^L) / sqrt(N_L) + b_v,          H(x) = sqrt(N) f(x),

with standard normal W, v and Var b = C_b, Var b_v = C_bv. When every alpha_l -> infinity, H is a
centred Gaussian field with E H(x) H(y) = N K_{L+1}(q), q = x.y / N, where the NNGP kernel maps are

    K_1(q) = C_W q + C_b,     K_{l+1}(q) = C_W <phi(u) phi(v)> + C_b   (readout: C_v, C_bv),
    (u, v) ~ N(0, [[K_l(1), K_l(q)], [K_l(q), K_l(1)]]).

The constant K_{L+1}(0) is a uniform random shift of H (it moves no Gibbs weight), so the landscape
is the spherical mixed p-spin model with

    xi(q) = K_{L+1}(q) - K_{L+1}(0),
    K'_{l+1}  = C_W <phi'(u) phi'(v)> K'_l,
    K''_{l+1} = C_W <phi''(u) phi''(v)> (K'_l)^2 + C_W <phi'(u) phi'(v)> K''_l   (Price's theorem).

xi has non-negative Taylor coefficients in q (each map is a positive-definite dot-product kernel).
For kinked activations (relu) <phi'' phi''> diverges at correlation 1, so xi''(1) = +inf.

Two routes, which the tests hold against each other: :func:`symbolic_xi` composes the closed forms
of the kernel map (sympy; None if some layer has no closed form) and differentiates them;
:class:`NetworkCovariance` evaluates the recursion numerically through
:class:`fieldnet.analysis.averages.ActivationAverages` (closed forms lambdified where they exist,
the project's Gaussian quadrature otherwise) with the chain rule above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from fieldnet.analysis.averages import C as _C
from fieldnet.analysis.averages import Q as _Q
from fieldnet.analysis.averages import averages
from fieldnet.errors import DivergenceError, positive_number, require
from fieldnet.symbolic.activations import get_activation

q_symbol = sp.Symbol("q", real=True)


def _depth(value) -> int:
    require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1, "depth",
            f"must be an integer >= 1 (number of hidden layers), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class NetworkCovariance:
    """xi, xi', xi'' of the alpha -> infinity field of an MLP (module docstring), vectorised over q in [-1, 1].

    ``readout_var`` C_v defaults to C_W (the issue's convention); the readout bias C_bv only shifts
    K_{L+1} by a constant and does not enter xi.
    """

    activation: object
    depth: int
    weight_var: float
    bias_var: float
    readout_var: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "depth", _depth(self.depth))
        object.__setattr__(self, "weight_var", positive_number(self.weight_var, "weight_var"))
        object.__setattr__(self, "bias_var", positive_number(self.bias_var, "bias_var", allow_zero=True))
        cv = self.weight_var if self.readout_var is None else positive_number(self.readout_var, "readout_var")
        object.__setattr__(self, "readout_var", cv)

    @property
    def name(self) -> str:
        return (f"{self.activation.name}, L={self.depth}, C_W={self.weight_var:g}, C_b={self.bias_var:g}"
                + ("" if self.readout_var == self.weight_var else f", C_v={self.readout_var:g}"))

    def _weights(self):
        """C_W for the hidden maps, C_v for the readout; biases C_b (the readout's drops out of xi)."""
        return [self.weight_var] * (self.depth - 1) + [self.readout_var]

    def kernels(self, q, order: int = 2):
        """(K, K', K'', ...) of the readout, K_{L+1}(q) and its q-derivatives up to ``order`` (<= 2)."""
        q = np.asarray(q, dtype=float)
        require(bool(np.all(np.isfinite(q)) and np.all(np.abs(q) <= 1.0 + 1e-12)), "q",
                "overlaps must be finite and in [-1, 1]")
        avg = averages(self.activation)
        cw, cb = self.weight_var, self.bias_var
        k, dk, ddk = cw * q + cb, np.full_like(q, cw), np.zeros_like(q)
        s = cw + cb
        for layer, weight in enumerate(self._weights(), start=1):
            rho = np.clip(k / s, -1.0, 1.0)
            new_k = weight * avg.pair(s, rho) + cb
            if order >= 1:
                slope = avg.derivative_pair(s, rho)
                new_dk = weight * slope * dk
            if order >= 2:
                new_ddk = weight * self._curvature(avg, s, rho, layer) * dk ** 2 + weight * slope * ddk
                ddk = new_ddk
            if order >= 1:
                dk = new_dk
            k = new_k
            s = weight * float(avg.second_moment(s)) + cb
        return (k, dk, ddk)[: order + 1]

    def _curvature(self, avg, s, rho, layer):
        """<phi'' phi''> at correlation rho; +inf where it diverges at rho = 1 (kinks)."""
        out = np.empty_like(rho)
        one = rho >= 1.0 - 1e-15
        if np.any(~one):
            out[~one] = avg.second_derivative_pair(s, rho[~one])
        if np.any(one):
            try:
                out[one] = float(avg.second_derivative_pair(s, np.array([1.0]))[0])
            except DivergenceError:
                out[one] = math.inf
        return out

    def xi(self, q):
        """xi(q) = K_{L+1}(q) - K_{L+1}(0)."""
        return self.kernels(q, order=0)[0] - self.kernels(np.zeros(1), order=0)[0][0]

    def xi_prime(self, q):
        return self.kernels(q, order=1)[1]

    def xi_second(self, q):
        return self.kernels(q, order=2)[2]

    def at_one(self) -> dict:
        """{'xi', 'xi_prime', 'xi_second'} at q = 1 (xi_second may be inf), plus 'offset' = K_{L+1}(0)."""
        k1, dk1, ddk1 = (float(v[0]) for v in self.kernels(np.ones(1)))
        k0 = float(self.kernels(np.zeros(1), order=0)[0][0])
        return {"xi": k1 - k0, "xi_prime": dk1, "xi_second": ddk1, "offset": k0}

    def spherical_model(self):
        """The :class:`fieldnet.landscape.spherical.SphericalModel` with this xi."""
        from fieldnet.landscape.spherical import SphericalModel

        return SphericalModel(self.xi, self.xi_prime, self.xi_second, name=self.name)


def symbolic_xi(activation, depth, weight_var, bias_var, readout_var=None):
    """xi(q) as a sympy expression in ``q_symbol`` by composing closed-form kernel maps, or None.

    Exact rational inputs stay exact (pass sympy numbers or strings such as "3/2"); xi' and xi'' follow
    by ``sympy.diff`` (the chain rule). None when some layer's pair average has no closed form (tanh).
    """
    act = get_activation(activation)
    L = _depth(depth)
    cw, cb = sp.sympify(weight_var), sp.sympify(bias_var)
    positive_number(cw, "weight_var")
    positive_number(cb, "bias_var", allow_zero=True)
    cv = cw if readout_var is None else sp.sympify(readout_var)
    positive_number(cv, "readout_var")
    avg = averages(act)
    pair, second = avg.closed_form("P"), avg.closed_form("V")
    if pair is None or second is None:
        return None
    k, s = cw * q_symbol + cb, cw + cb
    for weight in [cw] * (L - 1) + [cv]:
        k = weight * pair.subs({_Q: s, _C: k / s}) + cb
        s = weight * second.subs(_Q, s) + cb
    return sp.simplify(k - k.subs(q_symbol, 0))
