"""What runs the pipeline but is not part of it: the on-disk caches of compiled programs
(:mod:`~bgmm.plumbing.cache`, :mod:`~bgmm.plumbing.programs`), devices
(:mod:`~bgmm.plumbing.devices`), memory (:mod:`~bgmm.plumbing.memory`) and the float64 scope
(:mod:`~bgmm.plumbing.precision`)."""
