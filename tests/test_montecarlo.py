"""Monte Carlo ensembles of explicit finite-width networks against the infinite-width theory.

Every tolerance is derived from the ensembles' own standard errors: a check passes when
|reference - estimate| <= Z_MAX standard errors, with seeds fixed. References:

* exact at any width (fast tests): layer 1 (z^(1) is Gaussian, THEORY.md sec. 1) and the mean of
  layer 2 (it is a Gaussian average over the exactly Gaussian z^(1): sec. 1 recursion applied once);
  ReLU with C_b = 0 (THEORY.md sec. 4.4): E[G^(l)_aa] = (C_W/2)^(l-1) K^(1)_aa and
  E[hat G^2] / E[hat G]^2 = prod_k (1 + 5/n_k).
* infinite width (slow tests): the ensemble mean is K + K1/n + O(1/n^2) with K1 != 0 in general
  (THEORY.md sec. 4.1-4.2, 5.2), so ensembles at widths 64, 128, 256 are fitted by weighted least
  squares to a + b/n and the intercept a is compared with ``fieldnet.kernels`` (THEORY.md sec. 1)
  within Z_MAX of its standard error.
"""

from __future__ import annotations

import numpy as np
import pytest

import fieldnet as fn
from fieldnet.errors import DivergenceError, ParameterError
from fieldnet.montecarlo import (deviation_in_sigmas, fit_inverse_width, mean_and_sem, moment_ratio,
                                 sample_ensemble, width_scan)
from fieldnet.montecarlo.deep import activation_functions

Z_MAX = 5.0
#: (activation, C_W, C_b): critical ReLU (chi_perp = chi_par = 1, THEORY.md sec. 3.2a) and two off-critical ones
SETTINGS = [("relu", 2.0, 0.0), ("tanh", 1.5, 0.05), ("erf", 2.0, 0.1)]
WIDTHS = (64, 128, 256)
#: networks per width: sem^2 ~ 1 / (n M), so equal n M gives every width the same weight at ~1/3 the cost of equal M
COUNTS = (4000, 2000, 1000)
#: the acceptance grid (every setting at depths 1, 3, 5) plus critical tanh (C_W = 1, C_b = 0; THEORY.md sec. 3.2b),
#: whose 1/n coefficients grow linearly with depth (sec. 4.5), at depth 5
CASES = [(a, cw, cb, depth) for a, cw, cb in SETTINGS for depth in (1, 3, 5)] + [("tanh", 1.0, 0.0, 5)]


def _inputs(n_inputs: int = 3, n0: int = 6, seed: int = 1) -> np.ndarray:
    """Random inputs with |x|^2 / n_0 ~ 1; the last one is strongly correlated with the first (rho ~ 0.8)."""
    X = np.random.default_rng(seed).normal(size=(n_inputs, n0))
    X[-1] = 0.8 * X[0] + 0.6 * X[-1]
    return X


def _upper(a: np.ndarray) -> np.ndarray:
    """Entries a <= b of the trailing (N, N) axes (the kernels are symmetric)."""
    i, j = np.triu_indices(a.shape[-1])
    return a[..., i, j]


def _assert_within(estimate, se, reference, what: str) -> float:
    """|estimate - reference| <= Z_MAX se entry-wise; returns the largest deviation in sigmas."""
    dev = deviation_in_sigmas(estimate, reference, se)
    worst = float(np.max(dev))
    assert worst <= Z_MAX, (f"{what}: |theory - MC| reaches {worst:.2f} sigma\n"
                            f"MC {estimate}\nse {se}\ntheory {reference}")
    return worst


# ---------------------------------------------------------------------------------------------------------------
# exact at any width (fast)


@pytest.mark.parametrize("activation,cw,cb", SETTINGS)
def test_layers_one_and_two_are_exact_at_any_width(activation, cw, cb):
    """Layer 1: z^(1) ~ N(0, K^(1)) and H^(1) = Theta^(1) for every network (THEORY.md sec. 1, 'layer 1 is exact').
    Layer 2: E G^(2) = C_b + C_W <phi phi>_{K^(1)} = K^(2) and E H^(2) = Theta^(2) exactly, because the averages are
    over the exactly Gaussian z^(1) (the sec. 1 recursion applied once). Width 8, so no large-n limit is involved."""
    X = _inputs()
    net = fn.DeepNetwork(1, activation, cw, cb)
    theory = fn.kernels(net, X)
    ens = sample_ensemble(net.with_widths(8), X, 4000, output_width=5, seed=11, keep_samples=True)
    np.testing.assert_allclose(ens.ntk_samples[:, 0], np.broadcast_to(theory.ntk[0], ens.ntk_samples[:, 0].shape),
                               rtol=1e-12, atol=1e-12)
    _assert_within(_upper(ens.nngp_mean), _upper(ens.nngp_sem), _upper(theory.nngp), f"{activation} NNGP layers 1-2")
    _assert_within(_upper(ens.ntk_mean[1]), _upper(ens.ntk_sem[1]), _upper(theory.ntk[1]), f"{activation} NTK layer 2")


def test_standard_parameterization_first_layers_exact():
    """Standard parameterization (lambda_W^(m) = eta n_{m-1}, lambda_b = eta; THEORY.md sec. 0): layer 1 is
    deterministic and E H^(2) = Theta^(2) exactly (sec. 1), with unequal n_0, n_1, n_2 so that every fan-in counts."""
    X = _inputs(n0=5)
    net = fn.DeepNetwork(1, "tanh", 1.7, 0.2, widths=7, parameterization="standard", learning_rate=0.3)
    theory = fn.kernels(net, X)
    ens = sample_ensemble(net, X, 4000, output_width=3, seed=12)
    np.testing.assert_allclose(ens.ntk_mean[0], theory.ntk[0], rtol=1e-12)
    _assert_within(_upper(ens.ntk_mean[1]), _upper(ens.ntk_sem[1]), _upper(theory.ntk[1]), "standard NTK layer 2")
    _assert_within(_upper(ens.nngp_mean), _upper(ens.nngp_sem), _upper(theory.nngp), "standard NNGP layers 1-2")


@pytest.mark.parametrize("cw", [2.0, 1.5])
def test_relu_mean_is_exact_at_any_width(cw):
    """THEORY.md sec. 4.4 (scale-invariant phi, C_b = 0): E G^(l)_aa = (C_W A2)^(l-1) K^(1)_aa with A2 = 1/2 for
    ReLU and K^(1)_aa = C_W |x_a|^2 / n_0, at any widths (here small and unequal). Off-diagonal entries are not
    exact (K1 != 0 from layer 3, sec. 4.2), so only the diagonal is tested. The infinite-width K^(l)_aa from
    fieldnet.kernels must equal the same formula."""
    X = _inputs()
    net = fn.DeepNetwork(4, "relu", cw, 0.0, widths=(12, 7, 9, 5))
    ens = sample_ensemble(net, X, 20000, output_width=6, seed=13, compute_ntk=False)
    k1 = cw * np.sum(X * X, axis=1) / X.shape[1]
    reference = np.array([(cw / 2) ** (l - 1) * k1 for l in range(1, net.depth + 2)])
    np.testing.assert_allclose(np.diagonal(fn.kernels(net, X).nngp, axis1=1, axis2=2), reference, rtol=1e-12)
    _assert_within(np.diagonal(ens.nngp_mean, axis1=1, axis2=2), np.diagonal(ens.nngp_sem, axis1=1, axis2=2),
                   reference, "ReLU E G^(l)_aa")


def test_relu_output_second_moment_is_exact_at_any_width():
    """THEORY.md sec. 4.4: for ReLU with C_b = 0 and one input, E[hat G^(L+1)^2] / E[hat G^(L+1)]^2 =
    prod_{k=1}^{L} (1 + 5/n_k). The recorded statistic is G = (1/n_{L+1}) sum_i z_i^2 with z_i | hat G iid
    N(0, hat G), so E[G^2 | hat G] = hat G^2 (1 + 2/n_{L+1}) and E G = E hat G: the ratio gains (1 + 2/n_{L+1})."""
    X = _inputs(n_inputs=2)
    widths, out = (12, 16, 20), 8
    net = fn.DeepNetwork(3, "relu", 2.0, 0.0, widths=widths)
    ens = sample_ensemble(net, X, 40000, output_width=out, seed=14, compute_ntk=False, keep_samples=True)
    exact = (1 + 2 / out) * np.prod([1 + 5 / n for n in widths])
    g = np.diagonal(ens.nngp_samples[:, -1], axis1=1, axis2=2)   # (networks, inputs)
    ratio, se = moment_ratio(g)
    _assert_within(ratio, se, np.full_like(ratio, exact), "ReLU output second-moment ratio")


def test_single_network_ntk_matches_finite_differences():
    """The backpropagated NTK of one explicit network equals sum_mu lambda_mu dz_a/dtheta_mu dz_b/dtheta_mu with the
    Jacobian taken by central finite differences (THEORY.md sec. 0), averaged over the first ``ntk_neurons``
    neurons; the NNGP sample equals z_a . z_b / n. The weights are rebuilt from the documented streams:
    network k draws standard normals W^(1), b^(1), W^(2), ... from SeedSequence(seed).spawn(M)[k]."""
    X = _inputs(n_inputs=2, n0=3)
    net = fn.DeepNetwork(2, "tanh", [1.3, 1.6, 0.9], [0.1, 0.2, 0.3], widths=(4, 5), learning_rate=0.7)
    seed, m, k, neurons, out = 21, 3, 2, 2, 3
    ens = sample_ensemble(net, X, m, output_width=out, ntk_neurons=neurons, seed=seed, keep_samples=True)
    sizes = (3, 4, 5, out)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(m)[k])
    params = []
    for fan_in, width, cw, cb in zip(sizes[:-1], sizes[1:], net.weight_var, net.bias_var):
        w, b = rng.standard_normal((width, fan_in)), rng.standard_normal(width)
        params += [w * np.sqrt(cw / fan_in), b * np.sqrt(cb)]
    lam_w, lam_b = net.ntk_rates(3)
    rates = [r for lw, lb, n in zip(lam_w, lam_b, sizes) for r in (lw / n, lb)]

    def preactivations(ps):
        h, zs = X, []
        for w, b in zip(ps[::2], ps[1::2]):
            zs.append(h @ w.T + b)
            h = np.tanh(zs[-1])
        return zs

    zs = preactivations(params)
    eps = 1e-6
    for l in range(1, net.depth + 2):
        ntk = 0.0
        for p, rate in zip(range(2 * l), rates):
            for idx in np.ndindex(params[p].shape):
                shifted = []
                for sign in (1, -1):
                    ps = [q.copy() for q in params]
                    ps[p][idx] += sign * eps
                    shifted.append(preactivations(ps)[l - 1][:, :neurons])
                d = (shifted[0] - shifted[1]) / (2 * eps)            # (N, neurons)
                ntk = ntk + rate * (d @ d.T) / neurons
        np.testing.assert_allclose(ens.ntk_samples[k, l - 1], ntk, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(ens.nngp_samples[k, l - 1], zs[l - 1] @ zs[l - 1].T / sizes[l], rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# reproducibility, validation, estimators (fast)


def test_seeded_and_independent_of_chunking():
    X = _inputs()
    net = fn.DeepNetwork(3, "erf", 2.0, 0.1, widths=16)
    a = sample_ensemble(net, X, 40, seed=5, keep_samples=True)
    b = sample_ensemble(net, X, 40, seed=5, chunk_size=7, keep_samples=True)
    c = sample_ensemble(net, X, 40, seed=6)
    np.testing.assert_array_equal(a.nngp_samples, b.nngp_samples)
    np.testing.assert_array_equal(a.ntk_samples, b.ntk_samples)
    assert not np.allclose(a.nngp_mean, c.nngp_mean)
    assert a.widths == (6, 16, 16, 16, 16) and a.n_networks == 40 and a.ntk_neurons == (4,) * 4
    scan = width_scan(net, X, [8, 16], [10, 20], seed=3)
    assert [e.widths[-1] for e in scan] == [8, 16] and [e.n_networks for e in scan] == [10, 20]


@pytest.mark.parametrize("kwargs,parameter", [
    ({"n_networks": 1}, "n_networks"),
    ({"n_networks": 2.5}, "n_networks"),
    ({"output_width": 0}, "output_width"),
    ({"ntk_neurons": 0}, "ntk_neurons"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"seed": -1}, "seed"),
    ({"seed": "abc"}, "seed"),
])
def test_bad_arguments_raise(kwargs, parameter):
    net = fn.DeepNetwork(2, "relu", 2.0, 0.0, widths=4)
    args = {"n_networks": 10, **kwargs}
    with pytest.raises(ParameterError, match=parameter):
        sample_ensemble(net, _inputs(), **args)


def test_bad_network_or_inputs_raise():
    X = _inputs()
    with pytest.raises(ParameterError, match="widths"):
        sample_ensemble(fn.DeepNetwork(2, "relu"), X, 10)
    with pytest.raises(ParameterError, match="network"):
        sample_ensemble("relu", X, 10)
    with pytest.raises(ParameterError, match="X"):
        sample_ensemble(fn.DeepNetwork(1, "relu", widths=3), np.array([1.0, np.nan]).reshape(1, 2), 10)
    with pytest.raises(ParameterError, match="input_dim"):
        sample_ensemble(fn.DeepNetwork(1, "relu", widths=3, input_dim=4), X, 10)
    with pytest.raises(ParameterError, match="widths"):
        width_scan(fn.DeepNetwork(1, "relu"), X, [0, 4], 10)
    with pytest.raises(DivergenceError, match="delta"):
        sample_ensemble(fn.DeepNetwork(1, "step", widths=3), X, 10)
    assert sample_ensemble(fn.DeepNetwork(1, "step", widths=3), X, 10, compute_ntk=False).ntk_mean is None


def test_activation_callables():
    """phi and phi' from sympy: relu' is Heaviside with value 1/2 at 0, erf needs scipy, constants broadcast."""
    v = np.array([-1.0, 0.0, 2.0])
    phi, dphi = activation_functions(fn.get_activation("relu"))
    np.testing.assert_array_equal(phi(v), [0, 0, 2])
    np.testing.assert_array_equal(dphi(v), [0, 0.5, 1])
    phi, dphi = activation_functions(fn.get_activation("erf"))
    np.testing.assert_allclose(dphi(v), 2 / np.sqrt(np.pi) * np.exp(-v * v))
    assert activation_functions(fn.get_activation("linear"))[1](v).shape == v.shape


def test_estimators():
    """mean_and_sem is sd(ddof=1)/sqrt(M); the 1/n fit recovers an exact line and the textbook WLS errors;
    moment_ratio of Exp(1) samples is E g^2 / (E g)^2 = 2 within its delta-method error."""
    s = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    mean, sem = mean_and_sem(s)
    np.testing.assert_allclose(mean, s.mean(0))
    np.testing.assert_allclose(sem, s.std(0, ddof=1) / np.sqrt(3))
    widths = np.array([10.0, 20.0, 40.0])
    means = 2.0 - 3.0 / widths
    fit = fit_inverse_width(widths, means, np.full(3, 0.1))
    assert abs(fit.intercept - 2.0) < 1e-12 and abs(fit.slope + 3.0) < 1e-10 and fit.chi2 < 1e-20
    design = np.stack([np.ones(3), 1 / widths], axis=1)
    cov = 0.01 * np.linalg.inv(design.T @ design)
    np.testing.assert_allclose([fit.intercept_se ** 2, fit.slope_se ** 2, fit.covariance],
                               [cov[0, 0], cov[1, 1], cov[0, 1]], rtol=1e-10)
    ratio, se = moment_ratio(np.random.default_rng(0).exponential(size=20000))
    assert abs(ratio - 2.0) <= Z_MAX * se
    with pytest.raises(ParameterError, match="sems"):
        fit_inverse_width(widths, means, np.zeros(3))
    with pytest.raises(ParameterError, match="widths"):
        fit_inverse_width([10.0], means[:1], np.ones(1))
    with pytest.raises(ParameterError, match="samples"):
        mean_and_sem(np.ones((1, 3)))


# ---------------------------------------------------------------------------------------------------------------
# infinite width, extrapolated in 1/n (slow)


def _extrapolate(scan, quantity: str, layers: slice):
    """Weighted least-squares fit a + b/n over the widths of ``scan`` for every layer in ``layers`` and entry a <= b."""
    widths = [e.widths[1] for e in scan]
    means = np.stack([_upper(getattr(e, f"{quantity}_mean")[layers]) for e in scan])
    sems = np.stack([_upper(getattr(e, f"{quantity}_sem")[layers]) for e in scan])
    return fit_inverse_width(widths, means, sems)


@pytest.mark.slow
@pytest.mark.parametrize("activation,cw,cb,depth", CASES)
def test_kernels_match_extrapolated_ensemble(activation, cw, cb, depth):
    """fieldnet.kernels (THEORY.md sec. 1) = the 1/n -> 0 intercept of ensembles of explicit networks at widths
    64, 128, 256, for every layer and input pair, within Z_MAX of the intercept's standard error. The NTK of layer 1
    is deterministic (H^(1) = Theta^(1)) and is compared directly."""
    X = _inputs()
    net = fn.DeepNetwork(depth, activation, cw, cb)
    theory = fn.kernels(net, X)
    scan = width_scan(net, X, WIDTHS, COUNTS, seed=(100, depth))
    for ens in scan:
        np.testing.assert_allclose(ens.ntk_mean[0], theory.ntk[0], rtol=1e-12)
    nngp = _extrapolate(scan, "nngp", slice(None))
    ntk = _extrapolate(scan, "ntk", slice(1, None))
    worst_k = _assert_within(nngp.intercept, nngp.intercept_se, _upper(theory.nngp), f"{activation} L={depth} NNGP")
    worst_t = _assert_within(ntk.intercept, ntk.intercept_se, _upper(theory.ntk[1:]), f"{activation} L={depth} NTK")
    rel_k = np.max(nngp.intercept_se[-1] / np.abs(_upper(theory.nngp[-1])))
    rel_t = np.max(ntk.intercept_se[-1] / np.abs(_upper(theory.ntk[-1])))
    print(f"{activation} C_W={cw} C_b={cb} depth {depth}: max |theory - MC| / sigma: NNGP {worst_k:.2f}, "
          f"NTK {worst_t:.2f}; relative se of the output-layer intercept: NNGP {rel_k:.3f}, NTK {rel_t:.3f}")


@pytest.mark.slow
def test_standard_parameterization_ntk_extrapolated():
    """Standard parameterization (THEORY.md sec. 0): Theta_n itself grows with the width (lambda_W = eta n), and
    both Theta_n and the 1/n correction are linear in the rates, so E H_n / Theta_n = 1 + c/n + O(1/n^2).
    The ratio, with standard error sem / Theta_n, is extrapolated to 1/n -> 0 and must be 1 within Z_MAX sigma."""
    X = _inputs()
    net = fn.DeepNetwork(3, "tanh", 1.5, 0.05, parameterization="standard", learning_rate=0.5)
    scan = width_scan(net, X, WIDTHS, COUNTS, seed=200)
    ratios, sems = [], []
    for ens in scan:
        theta = fn.kernels(net.with_widths(ens.widths[1]), X).ntk
        ratios.append(_upper(ens.ntk_mean[1:] / theta[1:]))
        sems.append(_upper(ens.ntk_sem[1:] / np.abs(theta[1:])))
    fit = fit_inverse_width(WIDTHS, np.stack(ratios), np.stack(sems))
    worst = _assert_within(fit.intercept, fit.intercept_se, np.ones_like(fit.intercept), "standard NTK ratio")
    print(f"standard parameterization tanh depth 3: max |1 - MC/theory| / sigma {worst:.2f}")
