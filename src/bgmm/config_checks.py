"""The checks of a :class:`~bgmm.config.RunConfig`: each value, then their combinations.

A bad value raises :class:`bgmm.errors.UserError` naming the field (``error.option``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bgmm.errors import UserError
from bgmm.inference import AUTO_PATH_LENGTH
from bgmm.model.priors import Priors, validate_priors
from bgmm.warmup_rows import MIN_SUBSAMPLED_WARMUP, WARMUP_ROWS_WORDS

if TYPE_CHECKING:
    from bgmm.config import Option, RunConfig

__all__ = ["MAX_COUNT", "MAX_SEED", "check_combinations", "checked_fields"]

# Counts (chains, draws, steps) beyond this are typos; JAX's loop counters are 32-bit.
MAX_COUNT = 2**31 - 1
# Seeds go to jax.random.key (a signed 64-bit integer) and numpy's default_rng (non-negative).
MAX_SEED = 2**63 - 1
PRIOR_PRESETS: tuple[str, ...] = ("default", "tutorial")


def checked_fields(config: RunConfig, options: dict[str, Option]) -> dict[str, Any]:
    """Each field of ``config`` checked and in its plain Python type (numpy integers become
    ints); ``options``: the fields' :class:`~bgmm.config.Option`."""
    values = {}
    for name, option in options.items():
        value = getattr(config, name)
        if option.choices is not None and name != "priors":
            values[name] = _one_of(name, value, option.choices)
    values["n_components"] = _integer("n_components", config.n_components, 1, MAX_COUNT)
    values["num_chains"] = _integer("num_chains", config.num_chains, 1, MAX_COUNT)
    values["num_warmup"] = _integer("num_warmup", config.num_warmup, 0, MAX_COUNT)
    values["num_draws"] = _integer("num_draws", config.num_draws, 2, MAX_COUNT)
    if config.target_ess is not None:
        values["target_ess"] = _integer("target_ess", config.target_ess, 1, MAX_COUNT)
    # "auto": fitted in warm-up; None: by the data's size (inference.resolve_path_length).
    if config.num_leapfrog_steps not in (AUTO_PATH_LENGTH, None):
        values["num_leapfrog_steps"] = _integer(
            "num_leapfrog_steps", config.num_leapfrog_steps, 1, MAX_COUNT
        )
    # 2**30 leapfrog steps per transition is beyond any use; deeper trees overflow counters.
    values["max_tree_depth"] = _integer("max_tree_depth", config.max_tree_depth, 1, 30)
    values["n_init"] = _integer("n_init", config.n_init, 1, MAX_COUNT)
    values["random_state"] = _integer("random_state", config.random_state, 0, MAX_SEED)
    values["step_size"] = _positive_number("step_size", config.step_size)
    if config.target_accept is not None:
        values["target_accept"] = _probability("target_accept", config.target_accept)
    values["standardize"] = _flag("standardize", config.standardize, allow_none=True)
    values["split_rows"] = _flag("split_rows", config.split_rows)
    if config.warmup_rows not in WARMUP_ROWS_WORDS:
        values["warmup_rows"] = _integer("warmup_rows", config.warmup_rows, 100, MAX_COUNT)
    values["store_log_likelihood"] = _flag(
        "store_log_likelihood", config.store_log_likelihood, allow_none=True
    )
    values["priors"] = _priors(config.priors)
    return values


def check_combinations(config: RunConfig) -> None:
    """Raise UserError for options that do not go together."""
    if isinstance(config.priors, Priors) and config.priors.num_components != config.n_components:
        raise UserError(
            f"the priors are for K = {config.priors.num_components} components, the model has "
            f"n_components = {config.n_components}",
            option="priors",
        )
    if config.priors == "tutorial" and config.n_components != 3:
        raise UserError(
            f"the tutorial priors have 3 components, not {config.n_components}",
            option="n_components",
        )
    if config.sampler != "hmc" and config.adaptation == "tutorial":
        raise UserError(
            f"the tutorial's step-size rule is for HMC, not {config.sampler}", option="adaptation"
        )
    if config.num_leapfrog_steps == AUTO_PATH_LENGTH and (
        config.sampler != "hmc" or config.adaptation != "window"
    ):
        raise UserError(
            "a path length fitted in warm-up ('auto') is for HMC with the window adaptation",
            option="num_leapfrog_steps",
        )
    if config.metric == "dense" and (config.adaptation != "window" or config.sampler == "gibbs"):
        raise UserError(
            "a dense metric is estimated by the window adaptation of HMC or NUTS",
            option="metric",
        )
    if config.split_rows and (config.sampler == "gibbs" or config.likelihood == "direct"):
        raise UserError(
            "split rows are for HMC and NUTS with the GEMM likelihood, not "
            + ("Gibbs" if config.sampler == "gibbs" else "likelihood 'direct'"),
            option="split_rows",
        )
    if config.warmup_rows not in WARMUP_ROWS_WORDS and (
        config.sampler == "gibbs" or config.adaptation != "window" or config.split_rows
    ):
        raise UserError(
            "a warm-up on a subsample of rows is for HMC and NUTS with the window adaptation, "
            "on rows not split",
            option="warmup_rows",
        )
    if config.warmup_rows not in WARMUP_ROWS_WORDS and config.num_warmup < MIN_SUBSAMPLED_WARMUP:
        raise UserError(
            f"a warm-up on a subsample needs num_warmup >= {MIN_SUBSAMPLED_WARMUP}, "
            f"got {config.num_warmup}",
            option="warmup_rows",
        )
    if config.target == "tutorial" and config.covariance_type != "full":
        raise UserError(
            f"target 'tutorial' (the TFP tutorial's density without the Wishart Jacobian) "
            f"exists for covariance_type 'full' only, not {config.covariance_type!r}",
            option="covariance_type",
        )
    if config.sampler == "gibbs" and config.target != "correct":
        raise UserError(
            "Gibbs samples the model as written; there is no Gibbs form for target "
            "'tutorial' (use sampler 'hmc')",
            option="target",
        )


def _one_of(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise UserError(f"expected one of {', '.join(choices)}, got {value!r}", option=name)
    return value


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not (low <= value <= high)
    ):
        raise UserError(f"expected an integer from {low} to {high}, got {value!r}", option=name)
    return int(value)


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise UserError(f"expected a positive number, got {value!r}", option=name)
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"expected a positive finite number, got {value!r}", option=name)
    return float(value)


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise UserError(f"expected a number in (0, 1), got {value!r}", option=name)
    if not 0 < value < 1:
        raise UserError(f"expected a number in (0, 1), got {value!r}", option=name)
    return float(value)


def _flag(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool | np.bool_):
        expected = "True, False or None" if allow_none else "True or False"
        raise UserError(f"expected {expected}, got {value!r}", option=name)
    return bool(value)


def _priors(priors: Any) -> str | Priors:
    if isinstance(priors, str) and priors in PRIOR_PRESETS:
        return priors
    if not isinstance(priors, Priors):
        raise UserError(
            f"expected 'default', 'tutorial' or a bgmm.Priors, got a {type(priors).__name__}",
            option="priors",
        )
    try:
        validate_priors(priors)
    except ValueError as exc:
        raise UserError(str(exc), option="priors") from None
    return priors
