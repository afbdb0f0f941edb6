"""Simulation-based calibration of bgmm's samplers, run by ``benchmarks/sbc.py``.

- ``design``: the constants, configurations, chain lengths and negative controls.
- ``simulation``: parameters from the prior, data from the mixture, the test quantities.
- ``replication``: one replication (sample, thin, rank the truth) and one experiment.
- ``uniformity``: the tests of the ranks, Holm's correction and the rank histograms.
"""
