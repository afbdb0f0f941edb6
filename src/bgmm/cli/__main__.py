"""``python -m bgmm.cli``: the ``bgmm`` command."""

from bgmm.cli import run

run()
