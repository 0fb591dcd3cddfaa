"""Monte Carlo ensembles of explicit finite-width networks: the independent check of the theory.

    ens = sample_ensemble(net.with_widths(256), X, n_networks=1000, seed=0)
    ens.nngp_mean, ens.nngp_sem, ens.ntk_mean, ens.ntk_sem     # (L+1, N, N), index l - 1
    scan = width_scan(net, X, [64, 128, 256], 1000)            # one ensemble per width
    fit = fit_inverse_width([64, 128, 256], means, sems)        # a + b/n, weighted by 1/sem^2
"""

from fieldnet.montecarlo.deep import EnsembleMoments, activation_functions, sample_ensemble, width_scan
from fieldnet.montecarlo.stats import (InverseWidthFit, deviation_in_sigmas, fit_inverse_width, mean_and_sem,
                                       moment_ratio)

__all__ = ["EnsembleMoments", "InverseWidthFit", "activation_functions", "deviation_in_sigmas",
           "fit_inverse_width", "mean_and_sem", "moment_ratio", "sample_ensemble", "width_scan"]
