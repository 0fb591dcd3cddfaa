"""Random MLPs as Hamiltonians over their inputs (Winer & Hanin, arXiv:2503.23982; THEORY.md section 8).

Pipeline: :mod:`.covariance` (xi(q) of the alpha -> infinity Gaussian field from the layer kernel maps)
-> :mod:`.spherical` (replica theory of spherical mixed p-spin models for any xi) and
:mod:`.finite_alpha` (the replicated action with layer overlaps at finite aspect ratios alpha_l);
Monte Carlo of real networks in :mod:`fieldnet.montecarlo.landscape`.
"""
