"""The run configuration is the one home of defaults and checks: the API, the CLI's flags and
the sampler settings that key the compiled programs all come from it."""

import argparse
import dataclasses

import pytest

from bgmm.cli.options import build_parser, config_from, message_of
from bgmm.config import DEFAULT_TARGET_ACCEPT, RunConfig, demo_config, options
from bgmm.errors import UserError
from bgmm.inference import SamplerSettings, resolve_path_length


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_the_cli_flags_are_the_config_fields(command):
    actions = {a.dest: a for a in _subparser(command)._actions}
    for name, option in options().items():
        wanted = option.flag is not None and (command == "fit" or option.demo)
        assert (name in actions) == wanted, name
        if not wanted:
            continue
        action = actions[name]
        assert option.flag in action.option_strings
        # None is "not given": the config's own default applies, stated in one place.
        assert action.default is None
        if option.choices is not None:
            assert tuple(action.choices) == option.choices
        assert option.help.split(" (")[0] in action.help


def test_given_flags_make_the_config_and_the_rest_are_its_defaults():
    args = build_parser().parse_args(["fit", "data.csv", "-k", "4", "--sampler", "nuts"])
    assert config_from(args) == RunConfig(n_components=4, sampler="nuts")
    args = build_parser().parse_args(["demo", "--target", "tutorial", "--seed", "3"])
    assert config_from(args) == demo_config("tutorial", random_state=3)


def test_a_bad_flag_is_named_by_its_flag():
    args = build_parser().parse_args(["fit", "data.csv", "--chains", "0"])
    with pytest.raises(UserError) as caught:
        config_from(args)
    assert message_of(caught.value) == ("--chains: expected an integer from 1 to 2147483647, got 0")
    caught.value.option = "n_components"
    assert message_of(caught.value).startswith("-k/--components: ")


@pytest.mark.parametrize(
    ("sampler", "adaptation"),
    [("hmc", "window"), ("hmc", "tutorial"), ("nuts", "window"), ("gibbs", "window")],
)
def test_sampler_settings_resolve_every_default(sampler, adaptation):
    config = RunConfig(sampler=sampler, adaptation=adaptation)
    # HMC's path length is resolved by the data's size (tests/test_warmup_subsample.py).
    settings = resolve_path_length(config.sampler_settings("sequential"), 1000)
    assert isinstance(settings, SamplerSettings)
    assert settings.chain_method == "sequential"
    if sampler == "gibbs":
        assert settings.target_accept is None and settings.step_size is None
    elif adaptation == "window":
        assert settings.target_accept == DEFAULT_TARGET_ACCEPT[sampler]
    else:
        assert settings.num_adaptation_steps == 400 and settings.target_accept is None
    assert (settings.num_leapfrog_steps is None) == (sampler != "hmc")
    assert (settings.max_tree_depth is None) == (sampler != "nuts")
    with pytest.raises(ValueError, match="resolved"):
        RunConfig().sampler_settings()


def test_a_dense_metric_is_for_the_window_adaptation_of_hmc_and_nuts():
    for sampler in ("hmc", "nuts"):
        assert RunConfig(sampler=sampler, metric="dense").sampler_settings("sequential").metric == (
            "dense"
        )
    assert RunConfig(sampler="gibbs").sampler_settings("sequential").metric is None
    for config in ({"sampler": "gibbs"}, {"adaptation": "tutorial"}):
        with pytest.raises(UserError, match="dense metric") as caught:
            RunConfig(metric="dense", **config)
        assert caught.value.option == "metric"
    args = build_parser().parse_args(["fit", "data.csv", "--metric", "dense"])
    assert config_from(args).metric == "dense"


def test_a_config_survives_a_checkpoint_record():
    config = RunConfig(n_components=2, sampler="nuts", random_state=7, target_accept=0.9)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert config.replace(random_state=8).random_state == 8
    with pytest.raises(UserError, match="num_draws"):
        config.replace(num_draws=1)


def test_every_field_has_help_and_a_checked_default():
    for f in dataclasses.fields(RunConfig):
        assert f.metadata["option"].help, f.name
    RunConfig()  # the defaults pass their own checks
