"""Random MLPs as Hamiltonians over their inputs (Winer & Hanin, arXiv:2503.23982; THEORY.md section 8).

The pipeline, module by module:

* :mod:`.covariance` — xi(q) of the alpha -> infinity Gaussian field from the layer kernel maps (symbolic where
  closed forms exist, lowered averages otherwise), xi' and xi'' by the chain rule;
* :mod:`.spherical` — replica theory of spherical mixed p-spin models for any xi: RS, AT line, Crisanti–Sommers
  k-step RSB, the zero-temperature functional, phases, entropy curves, the exact linear case;
* :mod:`.replica` — the replicated action with layer overlaps, derived with sympy, and its LaTeX;
* :mod:`.tilted` — numba integrators (generated per activation) for the tilted single-neuron averages;
* :mod:`.finite_alpha`, :mod:`.finite_alpha_rsb` — the replica saddle at finite aspect ratios alpha_l (RS with the
  replicon, one-step RSB);
* :mod:`.summary`, :mod:`.plots` — what ``fieldnet landscape`` prints and draws.

Monte Carlo of real networks: :mod:`fieldnet.montecarlo.landscape`.
"""
