"""Tests for jaxembed.loop and `jaxembed train`: outputs, checkpoints, resume, bad input."""

import argparse
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxembed import loop, rundir
from jaxembed import objectives as ob
from jaxembed.commands import train as train_command
from jaxembed.train import TrainConfig
from jaxembed.vocab import Vocab

OUTPUTS = ("vectors.txt", "vocab.txt", "table.npy", "run.json")
# Small enough to compile and run in seconds: one compiled step shape (steps_per_call=1) unless
# a test needs the stacked one.
TRAIN = TrainConfig(dim=8, seed=3)
FIT = loop.FitConfig(window=2, sample=0.0, min_count=1, epochs=2, batch_size=64, steps_per_call=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus of 400 lines over 24 words in two topics."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(24)]
    lines = []
    for _ in range(400):
        topic = rng.integers(0, 2)
        lines.append(" ".join(words[12 * topic + j] for j in rng.integers(0, 12, 8)))
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(argv):
    """Runs `jaxembed train ARGV` as jaxembed.cli would: the subcommand's parser and function."""
    parser = argparse.ArgumentParser(prog="jaxembed")
    train_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *argv])
    return args.func(args)


def test_fit_writes_the_four_outputs_and_gensim_reads_the_vectors(corpus, tmp_path):
    out = tmp_path / "run"
    summary = loop.fit([corpus], out, TRAIN, FIT, progress=False).summary
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "checkpoints"])
    vocab = Vocab.load(out / "vocab.txt")
    table = np.load(out / "table.npy")
    assert table.shape == (24, 8) and table.dtype == np.float32 and len(vocab) == 24
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    assert kv.index_to_key == list(vocab.index_to_key)
    np.testing.assert_allclose(kv.vectors, table, rtol=1e-5, atol=1e-6)
    run = json.loads((out / "run.json").read_text())
    assert run == json.loads(json.dumps(summary))
    assert run["finished"] and run["vocab_size"] == 24 and run["corpus_words"] == 3200
    assert run["words"] == 2 * 3200 and run["words_per_second"] > 0
    # the step's compilation is timed apart: on a GPU it can be most of a short run
    assert 0 < run["first_call_seconds"] < run["train_seconds"]
    assert run["words_per_second_after_first_call"] > 0
    assert run["settings"]["train"]["dim"] == 8 and run["settings"]["fit"]["epochs"] == 2
    assert len(run["epoch_losses"]) == 2 and run["epoch_losses"][1] < run["epoch_losses"][0]


def test_resumed_run_ends_with_the_same_table_as_an_uninterrupted_one(corpus, tmp_path):
    fit = loop.FitConfig(**{**vars(FIT), "steps_per_call": 4, "checkpoint_every": 8})
    whole = loop.fit([corpus], tmp_path / "whole", TRAIN, fit, progress=False).summary
    part = tmp_path / "part"
    # Stop in the first epoch, as a kill after a checkpoint would (the run leaves no outputs).
    stopped = loop.fit(
        [corpus], part, TRAIN, loop.FitConfig(**{**vars(fit), "max_steps": 12}), progress=False
    ).summary
    assert not stopped["finished"] and stopped["steps"] == 12
    assert not (part / "run.json").exists()
    assert rundir.checkpoint_steps(part) == [8, 12]
    resumed = loop.fit([corpus], part, TRAIN, fit, resume=True, progress=False).summary
    np.testing.assert_array_equal(
        np.load(part / "table.npy"), np.load(tmp_path / "whole/table.npy")
    )
    for key in ("steps", "words", "loss", "epoch_losses"):
        assert resumed[key] == whole[key], key
    # the first call is the resuming process's own, not the first of the run
    this_process = resumed["train_seconds"] - stopped["train_seconds"]
    assert 0 < resumed["first_call_seconds"] < this_process
    steps = rundir.checkpoint_steps(part)
    assert steps[-1] == whole["steps"] and len(steps) == fit.keep_checkpoints


def test_checkpoints_are_complete_directories_and_only_the_last_few_are_kept(corpus, tmp_path):
    fit = loop.FitConfig(**{**vars(FIT), "checkpoint_every": 5, "keep_checkpoints": 2})
    summary = loop.fit([corpus], tmp_path / "run", TRAIN, fit, progress=False).summary
    directory = tmp_path / "run/checkpoints"
    names = sorted(p.name for p in directory.iterdir())
    steps = rundir.checkpoint_steps(tmp_path / "run")
    assert len(steps) == 2 and steps[-1] == summary["steps"]
    assert names == [f"step_{s}" for s in steps]  # no temporary directories left behind
    for step in steps:
        assert {p.name for p in (directory / f"step_{step}").iterdir()} >= {"state", "meta"}


def test_an_output_directory_holding_a_run_is_refused_unless_resume_or_overwrite(corpus, tmp_path):
    out = tmp_path / "run"
    loop.fit([corpus], out, TRAIN, FIT, progress=False)
    before = (out / "table.npy").read_bytes()
    with pytest.raises(
        FileExistsError, match="already holds a run .* resume=True .* overwrite=True"
    ):
        loop.fit([corpus], out, TRAIN, FIT, progress=False)
    assert (out / "table.npy").read_bytes() == before
    other = TrainConfig(dim=8, seed=4)
    loop.fit([corpus], out, other, FIT, overwrite=True, progress=False)
    assert (out / "table.npy").read_bytes() != before
    with pytest.raises(ValueError, match="other settings .*seed: 4 in the checkpoint, 3 now"):
        loop.fit([corpus], out, TRAIN, FIT, resume=True, progress=False)


def test_resume_without_a_checkpoint_is_refused(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        loop.fit([corpus], tmp_path / "empty", TRAIN, FIT, resume=True, progress=False)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: loop.FitConfig(epochs=0), "epochs must be a positive integer"),
        (lambda: loop.FitConfig(batch_size=-4), "batch_size must be a positive integer"),
        (lambda: loop.FitConfig(window=0), "window must be a positive integer"),
        (lambda: loop.FitConfig(min_count=0), "min_count must be a positive integer"),
        (lambda: loop.FitConfig(steps_per_call=0), "steps_per_call must be a positive integer"),
        (lambda: loop.FitConfig(checkpoint_every=-1), "checkpoint_every must be an integer >= 0"),
        (lambda: loop.FitConfig(sample=1.5), r"sample must be in \[0, 1\)"),
        (lambda: loop.FitConfig(mesh=(0, 1)), "mesh sizes must be a positive integer"),
        (lambda: TrainConfig(dim=0), "dim must be a positive integer"),
    ],
)
def test_non_positive_sizes_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"batch_size": 100_000}, ValueError, "larger than the corpus"),
        ({"min_count": 10_000}, ValueError, "no word occurs min_count=10000 times"),
    ],
)
def test_bad_data_settings_are_refused_and_nothing_is_written(
    corpus, tmp_path, change, error, message
):
    out = tmp_path / "run"
    with pytest.raises(error, match=message):
        loop.fit([corpus], out, TRAIN, loop.FitConfig(**{**vars(FIT), **change}), progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_missing_or_empty_corpus_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        loop.fit([tmp_path / "nope.txt"], out, TRAIN, FIT, progress=False)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="no words"):
        loop.fit([tmp_path / "empty.txt"], out, TRAIN, FIT, progress=False)
    assert not out.exists()


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    wild = TrainConfig(dim=8, lr=1e30, min_lr=1e30)
    fit = loop.FitConfig(**{**vars(FIT), "checkpoint_every": 1})
    with pytest.raises(ValueError, match="(loss became|NaN or infinite).*lower lr"):
        loop.fit([corpus], out, wild, fit, progress=False)
    assert not (out / "run.json").exists()
    steps = rundir.checkpoint_steps(out)
    assert steps, "the first step had a finite loss and table: it was checkpointed"
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(step_prefix=rundir.STEP_PREFIX)
    manager = ocp.CheckpointManager((out / "checkpoints").absolute(), options=options)
    restored = manager.restore(steps[-1])
    for table in (restored["state"]["params"]["embed"], restored["state"]["params"]["out"]):
        assert np.all(np.isfinite(np.asarray(table)))


def test_cli_end_to_end_writes_outputs_and_refuses_a_second_run(corpus, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [str(corpus), "--out", str(out), "--dim", "8", "--window", "2", "--sample", "0"]
    argv += ["--min-count", "1", "--epochs", "1", "--batch-size", "64", "--steps-per-call", "1"]
    argv += ["--no-progress"]
    assert _cli(argv) == 0
    assert all((out / name).is_file() for name in OUTPUTS)
    err = capsys.readouterr().err
    assert "words/s" in err and "after the first call's" in err
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    assert kv.vector_size == 8 and len(kv) == 24
    with pytest.raises(FileExistsError):
        _cli(argv)
    with pytest.raises(ValueError, match="--mesh must look like 4x2"):
        _cli([*argv, "--overwrite", "--mesh", "four"])


@pytest.mark.parametrize("objective", ["cbow", "next-token"])
def test_other_objectives_train_end_to_end(corpus, tmp_path, objective):
    train = TrainConfig(objective=objective, dim=8, context_length=8)
    if objective == "next-token":
        train = TrainConfig(objective=objective, dim=8, context_length=8, optimizer="adam", lr=0.01)
    fit = loop.FitConfig(**{**vars(FIT), "batch_size": 16})
    summary = loop.fit([corpus], tmp_path / objective, train, fit, progress=False).summary
    assert summary["epoch_losses"][1] < summary["epoch_losses"][0]
    assert np.load(tmp_path / objective / "table.npy").shape == (24, 8)


def test_outputs_have_the_usual_permissions(corpus, tmp_path):
    out = tmp_path / "run"
    loop.fit([corpus], out, TRAIN, loop.FitConfig(**{**vars(FIT), "epochs": 1}), progress=False)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("table.npy", "run.json", "vectors.txt"):
        assert Path(out / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_leftovers_of_a_killed_checkpoint_save_are_ignored_and_removed(corpus, tmp_path):
    out = tmp_path / "run"
    fit = loop.FitConfig(**{**vars(FIT), "max_steps": 6})
    loop.fit([corpus], out, TRAIN, fit, progress=False)
    # What a kill during orbax's save leaves: a temporary directory, never renamed.
    leftover = out / "checkpoints" / "step_9.orbax-checkpoint-tmp-1234"
    (leftover / "state").mkdir(parents=True)
    assert rundir.checkpoint_steps(out) == [6]
    summary = loop.fit([corpus], out, TRAIN, FIT, resume=True, progress=False).summary
    assert summary["finished"] and not leftover.exists()


@pytest.mark.slow
def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_table(corpus, tmp_path):
    """SIGKILL, not a clean stop: the resumed run still ends where an uninterrupted one does."""
    import signal
    import subprocess
    import sys
    import time

    argv = [str(corpus), "--dim", "8", "--window", "2", "--sample", "0", "--min-count", "1"]
    argv += ["--epochs", "30", "--batch-size", "64", "--steps-per-call", "2", "--seed", "3"]
    argv += ["--checkpoint-every", "300", "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxembed.cli", "train", *argv, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not rundir.checkpoint_steps(killed) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert rundir.checkpoint_steps(killed) and not (killed / "run.json").exists()
    assert _cli([*argv, "--out", str(killed), "--resume"]) == 0
    assert _cli([*argv, "--out", str(tmp_path / "whole")]) == 0
    np.testing.assert_array_equal(
        np.load(killed / "table.npy"), np.load(tmp_path / "whole" / "table.npy")
    )


def test_time_left_counts_from_the_end_of_the_first_call():
    # The first call compiles the step: its seconds must not make the ETA hours long.
    import io

    from jaxembed.loop import _restart_clock

    bar = loop._progress_bar(1_000_000, 0, enabled=True)
    bar.fp = io.StringIO()
    bar.start_t -= 30.0  # the first call took 30 s, nearly all of it compiling
    bar.update(1_000)
    assert bar.format_dict["elapsed"] >= 30.0
    _restart_clock(bar)
    bar.start_t -= 1.0  # then 1 s of training at 100k words/s
    bar.update(100_000)
    d = bar.format_dict
    eta = (d["total"] - d["n"]) / (d["n"] - d["initial"]) * d["elapsed"]
    assert 8 < eta < 10  # ~9 s left, not 4.5 hours
    bar.close()


def test_steps_per_call_defaults_by_objective_and_a_resumed_run_keeps_its_own(corpus, tmp_path):
    assert loop.FitConfig().for_objective("skipgram").steps_per_call == 16  # on a CPU
    assert loop.FitConfig().for_objective("cbow").steps_per_call == 64
    fit = loop.FitConfig(**{**vars(FIT), "steps_per_call": 4})
    whole = loop.fit([corpus], tmp_path / "whole", TRAIN, fit, progress=False)
    part = tmp_path / "part"
    loop.fit([corpus], part, TRAIN, loop.FitConfig(**{**vars(fit), "max_steps": 8}), progress=False)
    # Started with 4 steps a call; resumed without a value (as the default was then another).
    unset = loop.FitConfig(**{**vars(fit), "steps_per_call": None})
    resumed = loop.fit([corpus], part, TRAIN, unset, resume=True, progress=False)
    assert resumed.fit_config.steps_per_call == 4
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)


def test_a_gpu_or_tpu_gets_large_word2vec_batches_made_on_the_device_with_row_damping():
    from jaxembed import objectives as ob

    for backend in ("gpu", "tpu"):
        for objective, batch, steps in (("skipgram", 65536, 16), ("cbow", 4096, 64)):
            config = loop.FitConfig().for_objective(objective, backend=backend)
            assert (config.batch_size, config.steps_per_call) == (batch, steps)
            assert config.batches == "device"
            assert ob.row_scale(TrainConfig(objective=objective), batch) == "newton"
        text = loop.FitConfig().for_objective("next-token", backend=backend)
        assert (text.batch_size, text.steps_per_call, text.batches) == (32, 256, "host")
    cpu = loop.FitConfig().for_objective("skipgram", backend="cpu")
    assert (cpu.batch_size, cpu.steps_per_call, cpu.batches) == (4096, 16, "host")
    assert ob.row_scale(TrainConfig(), cpu.batch_size) == "none"
    given = loop.FitConfig(batch_size=512, batches="host").for_objective("skipgram", "gpu")
    assert (given.batch_size, given.batches) == (512, "host")


def test_a_run_saved_with_row_scale_none_resumes_under_the_auto_default(corpus, tmp_path):
    plain = TrainConfig(**{**vars(TRAIN), "row_scale": "none"})
    assert TRAIN.row_scale == "auto"
    whole = loop.fit([corpus], tmp_path / "whole", plain, FIT, progress=False)
    part = tmp_path / "part"
    loop.fit([corpus], part, plain, loop.FitConfig(**{**vars(FIT), "max_steps": 5}), progress=False)
    resumed = loop.fit([corpus], part, TRAIN, FIT, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)
    # Where auto would pick another rule than the run's, the resume is refused.
    newton = TrainConfig(**{**vars(TRAIN), "row_scale": "newton"})
    other = tmp_path / "other"
    loop.fit(
        [corpus], other, plain, loop.FitConfig(**{**vars(FIT), "max_steps": 5}), progress=False
    )
    with pytest.raises(ValueError, match="row_scale: 'none' in the checkpoint, 'newton' now"):
        loop.fit([corpus], other, newton, FIT, resume=True, progress=False)


def test_a_run_saved_with_auto_is_compared_by_the_rule_it_ran(corpus, tmp_path):
    """At the default batch size auto ran plain SGD: resuming it with newton is refused."""
    part = tmp_path / "part"
    loop.fit([corpus], part, TRAIN, loop.FitConfig(**{**vars(FIT), "max_steps": 5}), progress=False)
    newton = TrainConfig(**{**vars(TRAIN), "row_scale": "newton"})
    with pytest.raises(ValueError, match="row_scale: 'none' in the checkpoint, 'newton' now"):
        loop.fit([corpus], part, newton, FIT, resume=True, progress=False)


@pytest.mark.parametrize("setting", ["row_passes", "row_directions"])
def test_a_run_resumes_under_the_row_setting_its_batch_size_picks(corpus, tmp_path, setting):
    """row_passes=None / row_directions=None is what it picks for the run's batch size (one at
    this size): a run saved with 1 (row_directions: the default before None) resumes under it,
    bit-exactly; one saved with 2 is refused."""
    newton = {**vars(TRAIN), "row_scale": "newton"}
    one, picked = TrainConfig(**newton | {setting: 1}), TrainConfig(**newton)
    assert getattr(picked, setting) is None
    assert getattr(ob, setting)(picked, FIT.batch_size) == 1
    whole = loop.fit([corpus], tmp_path / "whole", one, FIT, progress=False)
    five = loop.FitConfig(**{**vars(FIT), "max_steps": 5})
    loop.fit([corpus], tmp_path / "part", one, five, progress=False)
    resumed = loop.fit([corpus], tmp_path / "part", picked, FIT, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)
    two = TrainConfig(**newton | {setting: 2})
    loop.fit([corpus], tmp_path / "two", two, five, progress=False)
    with pytest.raises(ValueError, match=f"{setting}: 2 in the checkpoint, 1 now"):
        loop.fit([corpus], tmp_path / "two", picked, FIT, resume=True, progress=False)


def test_a_run_resumes_under_the_row_step_it_recorded(corpus, tmp_path):
    """A checkpoint records what "auto" and None picked for its batch size (settings' row_step):
    where a later version picks another step for the same settings, resume names the setting
    rather than go on with another step; a checkpoint saved before the record is compared with
    what this version picks."""
    newton = TrainConfig(**{**vars(TRAIN), "row_scale": "newton"})
    whole = loop.fit([corpus], tmp_path / "whole", newton, FIT, progress=False)
    part = tmp_path / "part"
    loop.fit(
        [corpus], part, newton, loop.FitConfig(**{**vars(FIT), "max_steps": 5}), progress=False
    )
    metas = list(part.glob(f"{rundir.CHECKPOINTS}/*/meta/metadata"))
    assert json.loads(metas[0].read_text())["settings"]["row_step"] == ob.row_step(
        newton, FIT.batch_size
    )

    def edit(change):
        for meta in metas:
            saved = json.loads(meta.read_text())
            change(saved["settings"])
            meta.write_text(json.dumps(saved))

    edit(lambda s: s["row_step"].update(row_passes=2))  # as if None had picked two passes
    with pytest.raises(ValueError, match="row_passes: 2 in the checkpoint, 1 now"):
        loop.fit([corpus], part, newton, FIT, resume=True, progress=False)
    edit(lambda s: s.pop("row_step"))  # saved before the record
    resumed = loop.fit([corpus], part, newton, FIT, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)


def test_a_balanced_run_resumes_bit_exactly_and_keeps_its_balance(corpus, tmp_path):
    """row_balance=True (off at this batch size under None): kill + resume == uninterrupted, and
    resuming it under None, which picks off here, is refused."""
    on = TrainConfig(**{**vars(TRAIN), "row_balance": True})
    assert not ob.row_balance(TRAIN, FIT.batch_size)
    whole = loop.fit([corpus], tmp_path / "whole", on, FIT, progress=False)
    plain = loop.fit([corpus], tmp_path / "plain", TRAIN, FIT, progress=False)
    assert not np.allclose(whole.table_VxD, plain.table_VxD)  # it rebalanced
    five = loop.FitConfig(**{**vars(FIT), "max_steps": 5})
    loop.fit([corpus], tmp_path / "part", on, five, progress=False)
    with pytest.raises(ValueError, match="row_balance: True in the checkpoint, False now"):
        loop.fit([corpus], tmp_path / "part", TRAIN, FIT, resume=True, progress=False)
    resumed = loop.fit([corpus], tmp_path / "part", on, FIT, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)


def test_a_bfloat16_run_resumes_bit_exactly_from_bfloat16_checkpoints(corpus, tmp_path):
    """table_dtype="bfloat16": the checkpoint holds bfloat16 tables, kill + resume ==
    uninterrupted (the rounding keys follow the step number), the table comes back as float32
    close to the float32 run's, and resuming it as float32 is refused."""
    half = TrainConfig(**{**vars(TRAIN), "table_dtype": "bfloat16"})
    whole = loop.fit([corpus], tmp_path / "whole", half, FIT, progress=False)
    wide = loop.fit([corpus], tmp_path / "wide", TRAIN, FIT, progress=False)
    assert whole.table_VxD.dtype == np.float32
    assert abs(whole.summary["loss"] - wide.summary["loss"]) < 0.01 * wide.summary["loss"]
    five = loop.FitConfig(**{**vars(FIT), "max_steps": 5})
    part = loop.fit([corpus], tmp_path / "part", half, five, progress=False)
    assert part.state.params["embed"].dtype == jax.numpy.bfloat16
    with pytest.raises(
        ValueError, match="table_dtype: 'bfloat16' in the checkpoint, 'float32' now"
    ):
        loop.fit([corpus], tmp_path / "part", TRAIN, FIT, resume=True, progress=False)
    resumed = loop.fit([corpus], tmp_path / "part", half, FIT, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)


def test_a_diverging_newton_batch_is_told_to_bound_the_rows_steps():
    from jaxembed import cli

    newton = TrainConfig(row_scale="newton")
    advice = loop._large_batch_advice(newton, 1 << 20)
    assert "row_step_max=1.0" in advice
    parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    assert "bound each row's step with --row-step-max 1.0 (" in cli.in_flags(
        advice, ("row_step_max",), parser
    )
    bounded = TrainConfig(row_scale="newton", row_step_max=1.0)
    assert loop._large_batch_advice(bounded, 1 << 20) == ""  # nothing more to try
    assert loop._large_batch_advice(TrainConfig(), 1 << 20) == ""  # auto bounds it there
    assert loop._large_batch_advice(TrainConfig(), 4096) == ""  # the default batch: lower lr


def test_a_diverging_large_batch_without_row_damping_names_row_scale(corpus, tmp_path, capsys):
    from jaxembed import cli

    wild = TrainConfig(dim=8, lr=1e30, min_lr=1e30, row_scale="none")
    fit = loop.FitConfig(**{**vars(FIT), "batch_size": 4097})  # above skip-gram's default
    with pytest.raises(ValueError, match="lower lr .*, or damp this large batch's rows with "
                       "row_scale='auto'"):  # fmt: skip
        loop.fit([corpus], tmp_path / "run", wild, fit, progress=False)
    with pytest.raises(ValueError, match=r"lower lr \(now 1e\+30\); no checkpoint"):
        loop.fit([corpus], tmp_path / "small", wild, FIT, progress=False)  # default-size batch
    argv = [str(corpus), "--out", str(tmp_path / "cli"), "--dim", "8", "--lr", "1e30",
            "--min-lr", "1e30", "--row-scale", "none", "--batch-size", "4097", "--window", "2",
            "--min-count", "1", "--sample", "0", "--steps-per-call", "1", "--no-progress"]  # fmt: skip
    assert cli.main(["train", *argv]) == 2
    assert "damp this large batch's rows with --row-scale auto;" in capsys.readouterr().err


def test_ns_exponent_shapes_the_noise_and_is_kept_with_the_run(corpus, tmp_path):
    from jaxembed import data

    np.testing.assert_allclose(data.noise_distribution([4, 1, 0], 0.0), [0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="ns_exponent must be in"):
        TrainConfig(ns_exponent=1.5)
    fit = loop.FitConfig(**{**vars(FIT), "epochs": 1})
    plain = loop.fit([corpus], tmp_path / "a", TRAIN, fit, progress=False)
    flat = TrainConfig(**{**vars(TRAIN), "ns_exponent": 0.5})
    other = loop.fit([corpus], tmp_path / "b", flat, fit, progress=False)
    assert not np.allclose(plain.table_VxD, other.table_VxD)
    assert rundir.read_summary(tmp_path / "b")["settings"]["train"]["ns_exponent"] == 0.5
    _cli([str(corpus), "--out", str(tmp_path / "c"), "--epochs", "1", "--dim", "8",
          "--min-count", "1", "--ns-exponent", "0.5", "--no-progress"])  # fmt: skip
    assert rundir.read_summary(tmp_path / "c")["settings"]["train"]["ns_exponent"] == 0.5


def test_a_large_batch_is_drawn_from_a_chunk_of_64_batch_sizes_of_words():
    """FitConfig.shuffle_words: the pipeline's chunk (1M words on the host, 4M on the device) up to
    64 x batch_size words, up to 16M; given, or for next-token (no chunks), it stays."""
    for batches, least in (("host", 1 << 20), ("device", 1 << 22)):
        for batch, words in ((4096, least), (1 << 16, max(least, 1 << 22)), (1 << 20, 1 << 24)):
            config = loop.FitConfig(batch_size=batch, batches=batches).for_objective("skipgram")
            assert config.shuffle_words == words
    given = loop.FitConfig(batch_size=1 << 20, shuffle_words=1000).for_objective("cbow")
    assert given.shuffle_words == 1000
    assert loop.FitConfig().for_objective("next-token").shuffle_words is None
    with pytest.raises(ValueError, match="shuffle_words must be a positive integer"):
        loop.FitConfig(shuffle_words=0)


@pytest.mark.parametrize("batches", ["host", "device"])
def test_shuffle_words_sets_the_chunks_a_run_draws_its_batches_from(batches):
    """A corpus of 3,200 words whose ID is its position // 100: with chunks of 800 words the
    first batch's pairs come from the first 800 (IDs < 8), with the default chunk (the whole
    corpus) from all of it."""
    from jaxembed import objectives as ob
    from jaxembed.corpus import corpus_from_ids

    keys = [f"w{i:02d}" for i in range(32)]
    corpus = corpus_from_ids(np.arange(3200) // 100, Vocab.from_keys(keys), np.arange(0, 3201, 8))
    firsts = {}
    for words in (800, None):
        config = loop.FitConfig(**{**vars(FIT), "batches": batches, "shuffle_words": words})
        config = config.for_objective("skipgram")
        if batches == "host":
            batch = next(ob.get("skipgram").batches(corpus, TRAIN, config, 0, 0))
        else:
            stream = loop._device_batches(corpus, TRAIN, config, None)
            assert len(stream.chunks) == (4 if words else 1)
            batch = jax.device_get(next(stream.calls(0, 1))[0])
        firsts[words] = np.asarray(batch["center_B"])[np.asarray(batch["mask_B"]) > 0]
    assert firsts[800].max() < 8 and firsts[None].max() >= 8


@pytest.mark.parametrize("objective", ["skipgram", "next-token"])
def test_a_run_saved_before_shuffle_words_resumes_with_its_pipelines_chunk(
    corpus, tmp_path, objective
):
    train = TRAIN
    if objective == "next-token":
        train = TrainConfig(objective=objective, dim=8, context_length=8, optimizer="adam")
    whole = loop.fit([corpus], tmp_path / "whole", train, FIT, progress=False)
    part = tmp_path / "part"
    loop.fit([corpus], part, train, loop.FitConfig(**{**vars(FIT), "max_steps": 5}), progress=False)
    for meta in part.glob(f"{rundir.CHECKPOINTS}/*/meta/metadata"):  # as saved before the setting
        saved = json.loads(meta.read_text())
        del saved["settings"]["fit"]["shuffle_words"]
        meta.write_text(json.dumps(saved))
    resumed = loop.fit([corpus], part, train, FIT, resume=True, progress=False)
    assert resumed.fit_config.shuffle_words == (None if objective == "next-token" else 1 << 20)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)
    if objective == "next-token":
        return
    # Resumed with another chunk: refused, naming the setting.
    other = loop.FitConfig(**{**vars(FIT), "shuffle_words": 800})
    with pytest.raises(ValueError, match="shuffle_words: 1048576 in the checkpoint, 800 now"):
        loop.fit([corpus], part, TRAIN, other, resume=True, progress=False)
