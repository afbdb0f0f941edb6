"""Runs that stop once their draws are enough: ``target_ess`` (docs/design.md 19).

After every compiled call that keeps draws, the runner offers the draws so far to a
:class:`TargetEss` (``stop_when`` of :func:`bgmm.samplers.runner.run_chains`). It relabels
them as the results will be, and ends the run once every reported parameter and the log
density have bulk ESS >= the target and R-hat <= 1.01.

The checks start at :data:`MIN_DRAWS` draws per chain, since ESS and R-hat from fewer are
unreliable, and each waits for :data:`CHECK_GROWTH` times the draws of the last, so that
relabelling and ESS cost a bounded share of the run, and a run stops at most about that
factor past the first point it could have.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from bgmm.diagnostics import (
    RHAT_LIMIT,
    constant_parameters,
    diagnosed_parameters,
    rhat_and_bulk_ess,
)

__all__ = ["CHECK_GROWTH", "MIN_DRAWS", "Check", "TargetEss"]

MIN_DRAWS = 100
CHECK_GROWTH = 1.2


class Check(NamedTuple):
    """What one check of the draws found.

    Attributes
    ----------
    num_draws : int
        Draws per chain checked.
    ess_bulk_min : float
        The smallest bulk ESS of the monitored quantities.
    rhat_max : float
        The largest R-hat of the monitored quantities.
    enough : bool
    """

    num_draws: int
    ess_bulk_min: float
    rhat_max: float
    enough: bool


class TargetEss:
    """``stop_when`` of a run to a target bulk ESS.

    Parameters
    ----------
    target : int
        The bulk ESS every monitored quantity must reach.
    relabelled : dict of arrays -> dict of arrays
        The draws as the results report them (in data units, relabelled:
        :func:`bgmm.relabel.relabel_draws`), from the sampler's draws: ``weights`` (C, S, K),
        ``means`` (C, S, K, D), ``chol_precision`` (C, S, K, D, D), ``lp`` (C, S).
    covariance_type : "full", "diag", "tied" or "spherical"
    rhat_limit : float

    Attributes
    ----------
    last : Check or None
        The latest check; None before the first.
    """

    def __init__(
        self,
        target: int,
        relabelled: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        covariance_type: str,
        rhat_limit: float = RHAT_LIMIT,
    ):
        self.target = target
        self.relabelled = relabelled
        self.covariance_type = covariance_type
        self.rhat_limit = rhat_limit
        self.next_check = MIN_DRAWS
        self.last: Check | None = None

    def __call__(self, draws: dict[str, np.ndarray]) -> bool:
        """Whether ``draws`` (each (C, S, ...), the kept draws so far) are enough."""
        num_draws = draws["lp"].shape[1]
        if num_draws < self.next_check:
            return False
        self.next_check = math.ceil(num_draws * CHECK_GROWTH)
        self.last = self.check(draws)
        return self.last.enough

    def check(self, draws: dict[str, np.ndarray]) -> Check:
        """Bulk ESS and R-hat of the monitored quantities of ``draws``.

        They are the parameters the results report (relabelled,
        :func:`bgmm.diagnostics.diagnosed_parameters`) and the log density ``lp``, which no
        relabelling changes.
        """
        reported = self.relabelled(draws)
        features = [str(i) for i in range(reported["means"].shape[-1])]
        flat, _ = diagnosed_parameters(
            reported["weights"],
            reported["means"],
            reported["chol_precision"],
            self.covariance_type,
            features,
        )
        flat = np.concatenate([flat, np.asarray(draws["lp"], np.float64)[..., None]], axis=-1)
        rhat, ess_bulk = rhat_and_bulk_ess(flat)
        monitored = ~constant_parameters(flat)
        rhat, ess_bulk = rhat[monitored], ess_bulk[monitored]
        # NaN (too few draws, non-finite values) is never enough.
        enough = bool(np.all(rhat <= self.rhat_limit) and np.all(ess_bulk >= self.target))
        return Check(
            flat.shape[1],
            float(np.min(ess_bulk, initial=np.inf)),
            float(np.max(rhat, initial=-np.inf)),
            enough,
        )
