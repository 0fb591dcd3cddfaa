"""Monte Carlo ensembles of explicit finite-width networks: the independent check of the theory.

    ens = sample_ensemble(net.with_widths(256), X, n_networks=1000, seed=0)
    ens.nngp_mean, ens.nngp_sem, ens.ntk_mean, ens.ntk_sem     # (L+1, N, N), index l - 1
    scan = width_scan(net, X, [64, 128, 256], 1000)            # one ensemble per width
    fit = fit_inverse_width([64, 128, 256], means, sems)        # a + b/n, weighted by 1/sem^2
    fw = finite_width_scan(net, X, [32, 64, 128], 2000)         # G, V, kurtosis, NTK A B D F per width
    fw.fit("G").slope, fw.fit("V").intercept                    # K1 and V (per layer, 1/n_{l-1})
    rs = recurrent_width_scan(rnn, X, [16, 32, 64], 20000)      # recurrent / deep two-time ensembles (recurrent.py)
"""

from fieldnet.montecarlo.deep import EnsembleMoments, activation_functions, sample_ensemble, width_scan
from fieldnet.montecarlo.finite_width import (FiniteWidthMoments, FiniteWidthScan, finite_width_scan,
                                              sample_finite_width)
from fieldnet.montecarlo.recurrent import RecurrentMoments, RecurrentScan, recurrent_width_scan, sample_recurrent
from fieldnet.montecarlo.stats import (InverseWidthFit, deviation_in_sigmas, fit_inverse_powers, fit_inverse_width,
                                       mean_and_sem, moment_ratio)

__all__ = ["EnsembleMoments", "FiniteWidthMoments", "FiniteWidthScan", "InverseWidthFit", "activation_functions",
           "RecurrentMoments", "RecurrentScan", "recurrent_width_scan", "sample_recurrent",
           "deviation_in_sigmas", "finite_width_scan", "fit_inverse_powers", "fit_inverse_width", "mean_and_sem", "moment_ratio",
           "sample_ensemble", "sample_finite_width", "width_scan"]
