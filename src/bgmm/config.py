"""The run configuration: the one home of every option's default, check and help.

:class:`RunConfig` is what a run is asked to do. :class:`bgmm.BayesianGMM` keeps one, the
``bgmm`` command builds its options and their help from its fields, a checkpoint stores it,
and :meth:`RunConfig.sampler_settings` resolves it into the
:class:`bgmm.inference.SamplerSettings` that the compiled programs are built from and keyed
by (docs/design.md section 6). A default changed here reaches every one of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bgmm.config_checks import (
    MAX_COUNT,
    MAX_SEED,
    PRIOR_PRESETS,
    check_combinations,
    checked_fields,
)
from bgmm.errors import UserError
from bgmm.inference import (
    ADAPTATIONS,
    AUTO_PATH_LENGTH,
    LIKELIHOOD_FORMS,
    METRICS,
    SAMPLERS,
    SamplerSettings,
)
from bgmm.model.covariance import COVARIANCE_TYPES
from bgmm.model.density import TARGETS
from bgmm.model.priors import Priors
from bgmm.relabel import RELABEL_METHODS
from bgmm.samplers.runner import CHAIN_METHODS
from bgmm.tutorial import TUTORIAL_SAMPLER
from bgmm.warmup_rows import WARMUP_ROWS_WORDS

__all__ = [
    "COVARIANCE_TYPES",
    "DEFAULT_TARGET_ACCEPT",
    "DTYPES",
    "MAX_COUNT",
    "MAX_SEED",
    "PRIOR_PRESETS",
    "Option",
    "RunConfig",
    "demo_config",
]

# Fields renamed to scikit-learn's names; checkpoints written before keep the old ones.
RENAMED_FIELDS = {"seed": "random_state", "start_candidates": "n_init"}
DTYPES: tuple[str, ...] = ("float64", "float32")
# HMC with a fixed path length mixes best per gradient near 0.65 (Beskos et al. 2013; the
# tutorial-posterior comparison is in docs/benchmarks.md). NUTS keeps Stan's 0.8.
DEFAULT_TARGET_ACCEPT = {"hmc": 0.65, "nuts": 0.8}


@dataclass(frozen=True)
class Option:
    """How one field of :class:`RunConfig` shows on the command line.

    Attributes
    ----------
    help : str
        One line for ``--help`` (the default is added to it) and the API's docstring.
    flag : str or None
        The ``bgmm`` flag; None: Python only.
    short : str or None
        A one-letter alias of the flag.
    choices : tuple or None
        The values a string option takes.
    parse : str -> value
        Turns the flag's text into the field's type (the checks are the config's).
    metavar : str or None
        The value's name in ``--help`` (default: from ``parse``).
    demo : bool
        Whether ``bgmm demo`` takes it (the demo fixes the data, K, priors and start).
    """

    help: str
    flag: str | None = None
    short: str | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    demo: bool = True


def _steps_or_auto(text: str) -> int | str:
    """``--leapfrog-steps``: an integer, or "auto"."""
    if text == AUTO_PATH_LENGTH:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def _rows_or_word(text: str) -> int | str:
    """``--warmup-rows``: an integer, "auto" or "all"."""
    if text in WARMUP_ROWS_WORDS:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, 'auto' or 'all', got {text!r}"
        ) from None


def _option(default: Any, help: str, **option: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **option)})


@dataclass(frozen=True)
class RunConfig:
    """Every option of a run, checked when made.

    Each field's help, flag and choices are its ``metadata["option"]`` (:class:`Option`);
    ``RunConfig.__doc__`` lists them. A bad value raises :class:`bgmm.errors.UserError`
    naming the field (``error.option``).
    """

    n_components: int = _option(
        3, "number of components K >= 1", flag="--components", short="-k", parse=int, demo=False
    )
    priors: str | Priors = _option(
        "default",
        "'default': exchangeable weakly informative priors on standardised data; 'tutorial': "
        "the TFP tutorial's (K = 3); a bgmm.Priors (Python only) is used as given, in the "
        "units of the data",
        flag="--priors",
        choices=PRIOR_PRESETS,
        demo=False,
    )
    covariance_type: str = _option(
        "full",
        "shape of the component covariances (scikit-learn's names): 'full' (any positive "
        "definite matrix, Wishart prior), 'diag' (diagonal, Gamma prior per entry), 'tied' "
        "(one full matrix shared by all components), 'spherical' (a multiple of I per "
        "component, Gamma prior); each structure has HMC, NUTS and Gibbs",
        flag="--covariance",
        choices=COVARIANCE_TYPES,
        demo=False,
    )
    target: str = _option(
        "correct",
        "'correct': the model as written; 'tutorial': without the Wishart-on-Cholesky "
        "Jacobian, as the TFP tutorial samples it",
        flag="--target",
        choices=TARGETS,
    )
    sampler: str = _option(
        "hmc",
        "MCMC kernel; gibbs samples the exact conditionals",
        flag="--sampler",
        choices=SAMPLERS,
    )
    num_chains: int = _option(4, "number of chains", flag="--chains", parse=int)
    num_warmup: int = _option(1000, "warm-up (burn-in) steps per chain", flag="--warmup", parse=int)
    num_draws: int = _option(1000, "kept draws per chain (at least 2)", flag="--draws", parse=int)
    target_ess: int | None = _option(
        None,
        "stop drawing once every reported parameter (relabelled) and the log density have "
        "bulk ESS >= this and R-hat <= 1.01, checked as the draws grow (docs/design.md 19); "
        "--draws is then the most draws per chain. All chains run at once: 'parallel' "
        "vectorizes each device's share, 'auto' becomes 'vectorized' where it would run "
        "them one after another",
        flag="--target-ess",
        parse=int,
        metavar="ESS",
    )
    num_leapfrog_steps: int | str | None = _option(
        None,
        "HMC: mean leapfrog steps per transition (jittered), or 'auto': fitted in warm-up "
        "to the mean length of the paths to a U-turn (with the window adaptation; better "
        "per gradient at large N, worse on the tutorial's data: docs/benchmarks.md part 8); "
        "default: 'auto' where the warm-up runs on a subsample (--warmup-rows: 40,000 rows "
        "or more), else 16",
        flag="--leapfrog-steps",
        parse=_steps_or_auto,
        metavar="N|auto",
    )
    max_tree_depth: int = _option(
        10,
        "NUTS: at most 2**depth leapfrog steps per transition",
        flag="--max-tree-depth",
        parse=int,
    )
    step_size: float = _option(0.1, "initial leapfrog step size", flag="--step-size", parse=float)
    adaptation: str = _option(
        "window",
        "warm-up: windowed step size and diagonal mass matrix, or the tutorial's step-size "
        "rule (HMC)",
        flag="--adaptation",
        choices=ADAPTATIONS,
    )
    metric: str = _option(
        "diag",
        "HMC and NUTS: the window adaptation's mass matrix, its diagonal ('diag') or all of "
        "it ('dense': the posterior's correlations too, for strongly correlated parameters)",
        flag="--metric",
        choices=METRICS,
    )
    target_accept: float | None = _option(
        None,
        "mean acceptance the window adaptation aims at (default "
        + ", ".join(f"{v} for {k.upper()}" for k, v in DEFAULT_TARGET_ACCEPT.items())
        + ")",
        flag="--target-accept",
        parse=float,
    )
    chain_method: str = _option(
        "auto",
        "auto: one chain per CPU core at a time when there are several, vmapped on an "
        "accelerator, else one after another",
        flag="--chain-method",
        choices=("auto", *CHAIN_METHODS),
    )
    dtype: str = _option(
        "float64",
        "floating point precision",
        flag="--dtype",
        choices=DTYPES,
    )
    random_state: int = _option(0, "random seed, 0 to 2**63 - 1", flag="--seed", parse=int)
    standardize: bool | None = _option(
        None,
        "centre and scale the data before sampling, report in data units (default: only "
        "with the default priors)",
    )
    store_log_likelihood: bool | None = _option(
        None,
        "keep the pointwise log-likelihood (chain, draw, observation) for LOO/WAIC: all "
        "draws (True), none (False), or by default all while they take at most 256 MiB, "
        "else every t-th draw of each chain down to 1,000 draws in all, else none (with a "
        "warning)",
        flag="--log-likelihood",
        parse=bool,
        demo=False,
    )
    relabel: str = _option(
        "auto",
        "undo label switching (auto: pivot when the priors are exchangeable)",
        flag="--relabel",
        choices=("auto", *RELABEL_METHODS),
    )
    n_init: int = _option(
        10,
        "best-of-M start search: k-means++ clusterings tried per chain",
        flag="--start-candidates",
        parse=int,
        demo=False,
    )
    likelihood: str = _option(
        "auto",
        "how HMC and NUTS compute the log-likelihood: 'gemm' (two matrix products over "
        "per-row features, fewer of them for diag, spherical and tied covariances), "
        "'direct', or 'auto' (gemm unless its features exceed 2 GiB)",
        choices=LIKELIHOOD_FORMS,
    )
    split_rows: bool = _option(
        False,
        "split the data's rows over every device, and over every process when bgmm runs on "
        "JAX's distributed runtime (then each process passes only its own rows): HMC and "
        "NUTS, GEMM likelihood, chains vectorized, no checkpoint",
        flag="--split-rows",
        parse=bool,
        demo=False,
    )
    warmup_rows: int | str = _option(
        "auto",
        "HMC and NUTS with the window adaptation: run the warm-up on a random subsample of "
        "this many rows (the likelihood scaled by N / n), except its last 15 %, which tunes "
        "the step size on all rows; 'auto': 10,000 rows when the data have 40,000 or more "
        "and the warm-up is 200 steps or longer, else all; 'all': every row throughout "
        "(docs/design.md 18)",
        flag="--warmup-rows",
        parse=_rows_or_word,
        metavar="N|auto|all",
        demo=False,
    )

    def __post_init__(self) -> None:
        for name, value in checked_fields(self, options()).items():
            object.__setattr__(self, name, value)
        check_combinations(self)

    # ------------------------------------------------------------------ derived values

    @property
    def standardizes(self) -> bool:
        """Whether the data are standardised: ``standardize``, or by default only with the
        default priors (written for standardised data)."""
        return self.standardize if self.standardize is not None else self.priors == "default"

    @property
    def resolved_target_accept(self) -> float | None:
        """The acceptance the window adaptation aims at; None where nothing adapts to it."""
        if self.adaptation != "window" or self.sampler == "gibbs":
            return None
        return (
            self.target_accept
            if self.target_accept is not None
            else (DEFAULT_TARGET_ACCEPT[self.sampler])
        )

    def resolved_relabel(self, priors: Priors) -> str:
        """ "auto" made concrete: "pivot" when the priors are exchangeable, else "none"."""
        from bgmm.model.priors import is_exchangeable

        if self.relabel != "auto":
            return self.relabel
        return "pivot" if is_exchangeable(priors) and self.n_components > 1 else "none"

    def sampler_settings(self, chain_method: str | None = None) -> SamplerSettings:
        """Everything the compiled programs depend on, every default resolved.

        Options a sampler does not read are None, so that they neither name nor split its
        programs in the store.

        Parameters
        ----------
        chain_method : str, optional
            The layout "auto" resolved to (:func:`bgmm.plumbing.devices.default_chain_method`);
            required when ``self.chain_method`` is "auto".
        """
        chain_method = chain_method or self.chain_method
        if chain_method == "auto":
            raise ValueError("sampler_settings needs the chain method that 'auto' resolved to")
        gradient_based = self.sampler != "gibbs"
        return SamplerSettings(
            sampler=self.sampler,
            target=self.target,
            covariance_type=self.covariance_type,
            dtype=self.dtype,
            num_warmup=self.num_warmup,
            num_draws=self.num_draws,
            num_leapfrog_steps=self.num_leapfrog_steps if self.sampler == "hmc" else None,
            max_tree_depth=self.max_tree_depth if self.sampler == "nuts" else None,
            step_size=self.step_size if gradient_based else None,
            adaptation=self.adaptation if gradient_based else None,
            metric=self.metric if gradient_based and self.adaptation == "window" else None,
            num_adaptation_steps=min(TUTORIAL_SAMPLER.num_adaptation_steps, self.num_warmup)
            if self.adaptation == "tutorial"
            else None,
            target_accept=self.resolved_target_accept,
            chain_method=chain_method,
            likelihood=self.likelihood if gradient_based else None,
            warmup_rows=self.warmup_rows
            if gradient_based and self.adaptation == "window" and not self.split_rows
            else None,
        )

    # ------------------------------------------------------------------ records

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; custom priors show as "custom" (a checkpoint keeps their arrays)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.priors, Priors):
            record["priors"] = "custom"
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any], priors: Priors | None = None) -> RunConfig:
        """The config :meth:`to_dict` wrote; ``priors`` stand for "custom"."""
        record = {RENAMED_FIELDS.get(k, k): v for k, v in record.items()}
        if record.get("priors") == "custom":
            record["priors"] = priors
        return cls(**record)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)


def options() -> dict[str, Option]:
    """Each field's :class:`Option`, in the order of the fields."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(RunConfig)}


def defaults() -> dict[str, Any]:
    """Each field's default."""
    return {f.name: f.default for f in dataclasses.fields(RunConfig)}


def demo_config(target: str = RunConfig.target, **changes: Any) -> RunConfig:
    """The run ``bgmm demo`` makes: the tutorial's data, priors and K = 3.

    ``target="tutorial"`` is the tutorial's exact configuration (one chain, HMC with 5
    leapfrog steps, step size 0.065 adapted by its rule, 500 burn-in steps, 2000 draws);
    ``target="correct"`` the model as written with 4 chains, 500 warm-up steps and the
    default window adaptation. ``changes`` (None values ignored) override either.
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    if target == "tutorial":
        t = TUTORIAL_SAMPLER
        if changes.get("sampler", "hmc") != "hmc":
            raise UserError(
                f"the tutorial's configuration is HMC; sampler {changes['sampler']!r} needs "
                "target 'correct'",
                option="sampler",
            )
        base = {
            "num_chains": t.num_chains,
            "num_warmup": t.num_burnin,
            "num_draws": t.num_draws,
            "num_leapfrog_steps": t.num_leapfrog_steps,
            "step_size": t.step_size,
            "adaptation": "tutorial",
        }
    else:
        base = {"num_warmup": 500}
    return RunConfig(n_components=3, priors="tutorial", target=target, **(base | changes))


def parameters_doc() -> str:
    """The numpydoc "Parameters" section of the options: name, default and help."""
    return "\n    Parameters\n    ----------\n" + "".join(
        f"    {name} : default {default!r}\n        {option.help}.\n"
        for (name, option), default in zip(options().items(), defaults().values(), strict=True)
    )


def signature(leading: list[inspect.Parameter]) -> inspect.Signature:
    """``leading`` parameters, then every option but n_components as keyword-only, with its
    default: the signature the API shows for ``**options``."""
    return inspect.Signature(
        [
            *leading,
            *(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                for name, default in defaults().items()
                if name != "n_components"
            ),
        ]
    )


RunConfig.__doc__ = (RunConfig.__doc__ or "") + parameters_doc()
