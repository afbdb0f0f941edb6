"""The program store: a stored program gives the draws a fresh compile gives, and any
change to what a program depends on makes a new key."""

import os

import jax
import numpy as np
import pytest

from bgmm.config import RunConfig
from bgmm.inference import sample_posterior
from bgmm.model import Params, tutorial_priors
from bgmm.plumbing import programs
from bgmm.plumbing.cache import ProgramDirectory
from bgmm.tutorial import tutorial_data, tutorial_start


class MemoryStore:
    namespace = "tests"

    def __init__(self):
        self.records: dict[str, bytes] = {}
        self.loaded = 0

    def load(self, key):
        blob = self.records.get(key)
        self.loaded += blob is not None
        return blob

    def save(self, key, blob):
        self.records[key] = blob

    def discard(self, key):
        self.records.pop(key, None)


@pytest.fixture
def store():
    store = MemoryStore()
    previous = programs.use_program_store(store)
    yield store
    programs.use_program_store(previous)


SETTINGS = RunConfig(num_warmup=30, num_draws=20, num_leapfrog_steps=4, chain_method="sequential")


def _run(
    settings=SETTINGS,
    priors=None,
    num_observations=200,
    seed=3,
    sampler="hmc",
    num_chains=2,
    *,
    new_process=True,
):
    """One run; ``new_process``: its programs from the store or compiled, not from memory."""
    if new_process:
        programs.forget_programs_in_memory()
    initial = Params(*(np.repeat(a[None], num_chains, axis=0) for a in tutorial_start()))
    return sample_posterior(
        jax.random.key(seed),
        tutorial_data(num_observations),
        tutorial_priors() if priors is None else priors,
        initial,
        settings.replace(sampler=sampler).sampler_settings(),
        max_chunks=3,
    )


@pytest.mark.parametrize("sampler", ["hmc", "nuts", "gibbs"])
def test_a_stored_program_gives_the_draws_of_a_fresh_compile(store, sampler):
    programs.use_program_store(None)
    fresh = _run(sampler=sampler).draws
    programs.use_program_store(store)
    first = _run(sampler=sampler).draws  # compiles and stores
    assert len(store.records) == 3 and store.loaded == 0  # init, steps, final
    second = _run(sampler=sampler).draws  # loads
    assert store.loaded == 3 and len(store.records) == 3
    for name in fresh:
        np.testing.assert_array_equal(second[name], fresh[name], err_msg=name)
        np.testing.assert_array_equal(first[name], fresh[name], err_msg=name)


def test_a_second_run_in_the_process_reuses_its_programs(store, monkeypatch):
    """Kept in memory: neither compiled nor loaded again, and the same draws."""
    compiled = []
    compile_one = programs._compile
    monkeypatch.setattr(programs, "_compile", lambda *a: compiled.append(1) or compile_one(*a))
    first = _run()
    again = _run(new_process=False)
    assert len(compiled) == 3 and len(store.records) == 3 and store.loaded == 0
    for name in first.draws:
        np.testing.assert_array_equal(again.draws[name], first.draws[name], err_msg=name)


def test_a_stored_program_of_a_covariance_structure(store):
    """'tied' reads its features with the data's scatter matrix beside them (docs/design.md
    1.6): the stored program gives the draws of a fresh compile."""
    settings = SETTINGS.replace(covariance_type="tied")
    programs.use_program_store(None)
    fresh = _run(settings).draws
    programs.use_program_store(store)
    _run(settings)
    programs.use_program_store(store)  # drops the programs kept in memory: load from the store
    loaded = _run(settings).draws
    assert store.loaded == 3
    for name in fresh:
        np.testing.assert_array_equal(loaded[name], fresh[name], err_msg=name)


@pytest.mark.parametrize("chain_method", ["vectorized", "parallel"])
def test_stored_programs_of_every_chain_layout(store, chain_method):
    if chain_method == "parallel" and jax.local_device_count() < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2 (bgmm sets it)")
    settings = SETTINGS.replace(chain_method=chain_method)
    programs.use_program_store(None)
    fresh = _run(settings, num_chains=3).draws
    programs.use_program_store(store)
    _run(settings, num_chains=3)
    loaded = _run(settings, num_chains=3).draws
    assert store.loaded == 3
    for name in fresh:
        np.testing.assert_array_equal(loaded[name], fresh[name], err_msg=name)


def test_new_data_values_and_seeds_reuse_the_programs(store):
    _run()
    _run(seed=4)
    priors = tutorial_priors()
    _run(priors=priors)  # equal values, another object
    assert len(store.records) == 3 and store.loaded == 6


@pytest.mark.parametrize(
    "change",
    [
        {"settings": SETTINGS.replace(num_leapfrog_steps=5)},
        {"settings": SETTINGS.replace(num_warmup=31)},
        {"settings": SETTINGS.replace(num_draws=21)},
        {"settings": SETTINGS.replace(step_size=0.2)},
        {"settings": SETTINGS.replace(target_accept=0.7)},
        {"settings": SETTINGS.replace(likelihood="direct")},
        {"settings": SETTINGS.replace(target="tutorial")},
        {"settings": SETTINGS.replace(covariance_type="diag")},
        {"priors": tutorial_priors()._replace(mean_scale=1.5)},
        {"priors": tutorial_priors()._replace(wishart_scale=np.eye(2) * 2.0)},
    ],
    ids=lambda change: f"{next(iter(change))}",
)
def test_what_a_program_closes_over_changes_its_key(store, change):
    _run()
    before = set(store.records)
    _run(**change)
    assert store.loaded == 0
    assert len(set(store.records) - before) == 3


def test_a_new_data_shape_recompiles_what_reads_the_data(store):
    _run()
    _run(num_observations=300)
    # init and steps read the data; the final tuning does not, and is reused.
    assert store.loaded == 1 and len(store.records) == 5


def test_a_damaged_record_is_compiled_again_and_replaced(store):
    first = _run().draws
    for key in store.records:
        store.records[key] = b"not a program"
    with pytest.warns(programs.StoreWarning, match="failed its check") as caught:
        second = _run().draws
    assert len(caught) == 3  # one warning per damaged record
    np.testing.assert_array_equal(second["means"], first["means"])
    assert all(blob != b"not a program" for blob in store.records.values())
    third = _run().draws  # the rebuilt records load
    np.testing.assert_array_equal(third["means"], first["means"])


def _record(key="k"):
    out_tree = jax.tree.structure((np.zeros(1), {"a": np.zeros(1), "b": None}, Params(1, 2, 3)))
    return programs.encode_record(key, b"exported bytes", out_tree), out_tree


def test_a_record_round_trips_with_its_result_structure():
    blob, out_tree = _record()
    serialized, loaded_tree = programs.decode_record(blob, "k")
    assert serialized == b"exported bytes" and loaded_tree == out_tree


@pytest.mark.parametrize("position", [0, 9, 40, 48, 60, -1])
def test_any_flipped_bit_is_detected(position):
    blob, _ = _record()
    damaged = bytearray(blob)
    damaged[position] ^= 0x10
    with pytest.raises(programs.DamagedRecord):
        programs.decode_record(bytes(damaged), "k")


def test_a_record_of_another_key_or_a_truncated_one_is_refused():
    blob, _ = _record("k")
    with pytest.raises(programs.DamagedRecord, match="another key"):
        programs.decode_record(blob, "other")
    with pytest.raises(programs.DamagedRecord):
        programs.decode_record(blob[:20], "k")


def test_a_planted_pickle_is_never_unpickled(tmp_path):
    """Even a pickle carrying a valid-looking header is refused before anything is parsed."""
    import pickle

    sentinel = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    for blob in (
        pickle.dumps(Payload()),
        programs.encode_record("k", b"", jax.tree.structure(None))[:48] + pickle.dumps(Payload()),
    ):
        with pytest.raises(programs.DamagedRecord):
            programs.decode_record(blob, "k")
    assert not sentinel.exists()


def test_only_bgmm_named_tuples_are_rebuilt():
    for name in ("os:system", "collections:namedtuple", "bgmm.model:default_priors"):
        description = {"namedtuple": name, "children": []}
        with pytest.raises(programs.DamagedRecord):
            programs._tree_from_json(description)


def test_describes_only_what_it_can_tell_apart():
    key = programs.program_key(("a", np.arange(3.0)), [], jax.devices()[:1])
    assert key != programs.program_key(("a", np.arange(3.0) + 1), [], jax.devices()[:1])
    assert key != programs.program_key(("a", np.arange(3.0)), [], jax.devices()[:1], "other")
    with pytest.raises(TypeError, match="cannot key"):
        programs.program_key((object(),), [], jax.devices()[:1])


def test_a_program_found_in_jax_cache_is_still_stored(tmp_path):
    """The store keeps exported programs, not executables, so a compile that JAX's cache
    answers can be stored too (XLA:CPU cannot serialize such an executable again)."""
    from bgmm.plumbing.cache import enable_compilation_cache

    previous = programs.use_program_store(None)
    try:
        enable_compilation_cache(tmp_path)  # JAX's cache, and a store in tmp_path
        first = programs.use_program_store(None)
        assert isinstance(first, ProgramDirectory)
        fn = jax.vmap(lambda x: jax.numpy.sin(x) * 3.0)
        args = (np.arange(5.0),)
        programs.use_program_store(first)
        programs.compile_program(fn, args, identity="sin", devices=jax.devices()[:1])
        assert len(os.listdir(first.path)) == 1
        second = ProgramDirectory(tmp_path / "other")
        programs.use_program_store(second)
        compiled = programs.compile_program(fn, args, identity="sin", devices=jax.devices()[:1])
        np.testing.assert_allclose(compiled(*args), np.sin(args[0]) * 3.0)
        assert len(os.listdir(second.path)) == 1
    finally:
        programs.use_program_store(previous)


def test_program_directory_round_trip(tmp_path):
    directory = ProgramDirectory(tmp_path)
    assert directory.load("k") is None
    directory.save("k", b"blob")
    assert directory.load("k") == b"blob"
    assert [p.name for p in directory.path.iterdir()] == ["k"]  # no temporary files left
    assert (directory.path / "k").stat().st_mode & 0o777 == 0o600
    assert directory.path.stat().st_mode & 0o777 == 0o700
    directory.discard("k")
    assert directory.load("k") is None
    assert directory.path.parent == tmp_path and len(directory.namespace) == 16
