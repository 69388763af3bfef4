"""Tests for jaxembed.objectives: one record per objective, shared defaults, declared tables."""

import jax
import numpy as np
import pytest
from conftest import random_corpus_file

from jaxembed import loop, rundir
from jaxembed import objectives as ob
from jaxembed import train as tr
from jaxembed.corpus import read_corpus


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return random_corpus_file(tmp_path_factory.mktemp("corpus"), 20, 80, 10)


@pytest.mark.parametrize("name", list(ob.OBJECTIVES))
def test_a_record_batches_what_its_step_reads(corpus_file, name):
    objective = ob.get(name)
    config = tr.TrainConfig(objective=name, dim=8, context_length=4)
    fit_config = loop.FitConfig(window=2, min_count=1, batch_size=8).for_objective(name)
    batch = next(objective.batches(read_corpus(corpus_file, 1), config, fit_config, 0, 0))
    assert set(objective.batch_keys) <= set(batch)
    step = tr.make_train_step(config, np.ones(32) if objective.negatives else None)
    state, metrics = step(tr.init_state(config, 32), batch)
    assert int(state.step) == 1 and float(metrics["count"]) > 0


@pytest.mark.parametrize(
    "name, optimizer, lr, min_lr, batch_size",
    [
        ("skipgram", "sgd", 0.025, 0.0001, 4096),
        ("cbow", "sgd", 0.05, 0.0001, 512),
        ("next-token", "adam", 0.003, 0.0003, 32),
    ],
)
def test_python_and_the_cli_share_the_objectives_defaults(name, optimizer, lr, min_lr, batch_size):
    config = tr.TrainConfig(objective=name)
    assert (config.optimizer, config.lr, config.min_lr) == (optimizer, lr, min_lr)
    assert loop.FitConfig().for_objective(name).batch_size == batch_size
    assert loop.FitConfig(batch_size=7).for_objective(name).batch_size == 7
    assert tr.TrainConfig(objective=name, lr=0.5).lr == 0.5
    assert tr.TrainConfig().seed == 1  # the CLI's --seed default too


def test_unknown_objective_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"objective must be one of \('skipgram', 'cbow'"):
        tr.TrainConfig(objective="glove")


@pytest.mark.parametrize(
    "name, optimizer, want",
    [
        ("skipgram", "sgd", {".params['embed']", ".params['out']"}),
        (
            "skipgram",
            "adam",
            {".params['embed']", ".params['out']"}
            | {
                f".opt_state['{t}'].inner_state[0].{m}"
                for t in ("embed", "out")
                for m in ("mu", "nu")
            },
        ),
        (
            "next-token",
            "adam",
            {".params['params']['embed']['embedding']"}
            | {
                f".opt_state.inner_state[0].{m}['params']['embed']['embedding']"
                for m in ("mu", "nu")
            },
        ),
    ],
)
def test_the_state_declares_its_tables(name, optimizer, want):
    state = tr.init_state(tr.TrainConfig(objective=name, dim=4, optimizer=optimizer), 32)
    assert set(state.tables) == want
    first = (
        ".params['params']['embed']['embedding']" if name == "next-token" else ".params['embed']"
    )
    assert state.tables[0] == first  # the input table comes first
    assert tr.input_table(state).shape == (32, 4)
    # Declared, not sniffed: a same-shaped leaf that is no table stays undeclared.
    if name == "next-token":
        assert not any("pos" in path for path in state.tables)


def test_a_new_objective_is_one_record(corpus_file, tmp_path, monkeypatch):
    """Adding an objective touches jaxembed.objectives only: train, loop and the CLI ask the record."""
    toy = ob.SKIPGRAM._replace(name="toy", lr=0.05, min_lr=0.05, batch_size=16)
    monkeypatch.setitem(ob.OBJECTIVES, "toy", toy)
    config = tr.TrainConfig(objective="toy", dim=8, seed=3)
    assert (config.lr, config.min_lr, config.sparse) == (0.05, 0.05, True)
    fit_config = loop.FitConfig(window=2, sample=0.0, min_count=1, epochs=1, steps_per_call=1)
    result = loop.fit([corpus_file], tmp_path / "toy", config, fit_config, progress=False)
    assert result.fit_config.batch_size == 16
    assert result.summary["settings"]["train"]["objective"] == "toy"
    # 800 words, window 2, no subsampling: between 800 and 3,200 pairs; 16 a step.
    assert 800 / 16 <= result.summary["steps"] <= 3200 / 16
    np.testing.assert_array_equal(rundir.load_table(tmp_path / "toy")[0], result.table_VxD)


def test_fit_returns_its_state_table_and_initial_table(corpus_file, tmp_path):
    config = tr.TrainConfig(dim=8, seed=5)
    fit_config = loop.FitConfig(window=2, min_count=1, epochs=1, batch_size=32)
    result = loop.fit([corpus_file], tmp_path / "run", config, fit_config, progress=False)
    table_VxD, vocab = rundir.load_table(tmp_path / "run")
    np.testing.assert_array_equal(result.table_VxD, table_VxD)
    assert result.vocab == vocab and result.summary == rundir.read_summary(tmp_path / "run")
    np.testing.assert_array_equal(np.asarray(tr.input_table(result.state))[: len(vocab)], table_VxD)
    # The initial table is the one fit allocated: padded rows, the same seed.
    start = tr.init_state(config, 128)
    np.testing.assert_array_equal(result.initial_table(), np.asarray(start.params["embed"])[:20])
    assert not np.array_equal(result.initial_table(), table_VxD)
    assert jax.tree.structure(result.state) == jax.tree.structure(start)


def test_the_step_uses_the_decayed_learning_rate():
    """The injected rate is the one applied: a step at progress 1 moves rows by min_lr / lr."""
    config = tr.TrainConfig(dim=4, lr=0.4, min_lr=0.1, share_negatives=1, seed=0)
    step = tr.make_train_step(config, np.ones(16))
    batch = {
        "center_B": np.arange(4, dtype=np.int32),
        "context_B": np.arange(4, 8, dtype=np.int32),
        "mask_B": np.ones(4, np.float32),
    }
    moved = []
    for progress in (0.0, 1.0):
        state = tr.init_state(config, 16)
        state = state.replace(params={**state.params, "out": state.params["embed"] + 0.1})
        before = np.array(state.params["out"], copy=True)  # the step donates the state
        state, metrics = step(state, batch | {"progress": np.float32(progress)})
        moved.append(np.asarray(state.params["out"]) - before)
        assert float(metrics["lr"]) == pytest.approx(0.4 if progress == 0 else 0.1)
    # Differences of float32 rows near 0.1: absolute rounding of about 1e-8.
    np.testing.assert_allclose(moved[1], moved[0] * 0.25, rtol=1e-5, atol=1e-7)
