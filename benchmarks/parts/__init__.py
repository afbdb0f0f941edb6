"""The parts of ``benchmarks/run.py``, one module each.

Each module has ``run(opts, results) -> dict``: it measures, stores its record in
``results`` under its key (``part1`` .. ``part5``, ``gpu``), saves the results file as it
goes and prints its tables. ``targets`` holds the issue's targets and checks them.

- ``tutorial``: part 1, the tutorial workload per sampler, and the profile.
- ``tfp``: part 2, the TFP tutorial's program and the ratios bgmm / TFP.
- ``scale``: part 3, value + gradient at N = 10^6 and the peak memory of ``bgmm fit``.
- ``scaling_curve``: part 4, value + gradient over N, D, K.
- ``demo``: part 5, ``bgmm demo`` end to end.
- ``gpu``: HMC draws per second on synthetic data.
"""
