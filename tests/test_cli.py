"""Tests for jaxembed.cli: library errors shown with the command's flags, shared defaults."""

import argparse
import dataclasses
import re

import numpy as np
import pytest
from conftest import random_corpus_file

from jaxembed import cli
from jaxembed import corpus as corpus_module
from jaxembed.checks import ParameterError, positive_int
from jaxembed.loop import FitConfig
from jaxembed.train import TrainConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return random_corpus_file(tmp_path_factory.mktemp("corpus"), 12, 60, 8)


def _train(capsys, corpus, out, *flags):
    argv = ["train", str(corpus), "--out", str(out), "--dim", "4", "--epochs", "1"]
    argv += ["--min-count", "1", "--batch-size", "64", "--no-progress"]
    code = cli.main([*argv, *flags])  # argparse keeps the last of a repeated flag
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "message, parameters, want",
    [
        (
            "batch_size=9 is too big - use batch_size=8",
            ("batch_size",),
            "--batch-size 9 is too big - use --batch-size 8",
        ),
        ("pass resume=True to continue", ("resume",), "pass --resume to continue"),
        ("lower lr (now 0.5)", ("lr",), "lower --lr (now 0.5)"),
        ("min_lr must be <= lr", ("lr",), "min_lr must be <= --lr"),  # only whole names
        ("choose another out_dir", ("out_dir",), "choose another --out"),
        ("chunk_tokens must be positive", ("chunk_tokens",), "chunk_tokens must be positive"),
    ],
)
def test_in_flags_renames_the_named_parameters(message, parameters, want):
    parser = cli._subparser(cli.build_parser(), "train")
    assert cli.in_flags(message, parameters, parser) == want


def test_library_errors_name_python_parameters():
    with pytest.raises(
        ParameterError, match="^batch_size must be a positive integer; got 0$"
    ) as err:
        positive_int("batch_size", 0)
    assert err.value.parameters == ("batch_size",)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--batch-size", "100000"], r"use --batch-size \d+ or less"),
        (["--window", "0"], "--window must be a positive integer; got 0"),
        (["--sample", "2"], r"--sample must be in \[0, 1\)"),
        (["--objective", "glove"], "--objective must be one of"),
        (["--lr", "0.0001", "--min-lr", "0.01"], "need --lr > 0 and 0 <= --min-lr <= --lr"),
        (["--objective", "cbow", "--row-balance", "on"], "--row-balance rebalances skip-gram's"),
        (
            ["--optimizer", "adam", "--table-dtype", "bfloat16"],
            "--table-dtype bfloat16 is for word2vec's sparse SGD step .* use --table-dtype "
            "float32 with",
        ),
    ],
)
def test_train_errors_name_the_flags(capsys, corpus, tmp_path, flags, message):
    code, err = _train(capsys, corpus, tmp_path / "run", *flags)
    assert code == 2
    assert re.search(message, err), err
    assert "Traceback" not in err


def test_min_count_error_names_the_flag(capsys, corpus, tmp_path):
    argv = ["train", str(corpus), "--out", str(tmp_path / "run"), "--min-count", "1000"]
    assert cli.main([*argv, "--no-progress"]) == 2
    assert "lower --min-count to" in capsys.readouterr().err


def test_an_occupied_out_is_refused_in_flags(capsys, corpus, tmp_path):
    out = tmp_path / "run"
    assert _train(capsys, corpus, out)[0] == 0
    code, err = _train(capsys, corpus, out)
    assert code == 2
    assert "pass --resume to continue it, --overwrite to replace it, or choose another --out" in err


def test_train_flags_default_to_the_configs_defaults():
    """One set of defaults: what the CLI passes when no flag is given is what Python gets."""
    args = cli.build_parser().parse_args(["train", "c.txt", "--out", "d"])
    train, fit = TrainConfig(), FitConfig()
    for field in dataclasses.fields(TrainConfig):
        given = getattr(args, field.name)
        assert given is None or given == getattr(train, field.name), field.name
        if given is None:  # left to the objective's default
            assert field.default is None, field.name
    for field in dataclasses.fields(FitConfig):
        if field.name == "mesh":
            continue  # --mesh DATAxMODEL and --devices are parsed into it
        assert getattr(args, field.name) == getattr(fit, field.name), field.name


def test_help_imports_no_jax():
    """`jaxembed --help` and every subcommand's help stay instant: JAX loads only to run one."""
    import subprocess
    import sys

    code = "import sys; from jaxembed import cli; cli.build_parser(); print(sorted(m for m in ('jax', 'flax', 'optax', 'gensim') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_word2vec_training_imports_no_flax(tmp_path):
    """flax (~0.3 s to import) is the next-token model's: `jaxembed train` with word2vec, in a
    fresh process, never imports it; the next-token model is still where it was."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat and the dog sat on the log\n" * 40)
    code = (
        "import sys; from jaxembed import cli\n"
        f"assert cli.main(['train', {str(corpus)!r}, '--out', {str(tmp_path / 'run')!r}, "
        "'--dim', '8', '--epochs', '1', '--min-count', '1', '--batch-size', '64', "
        "'--no-progress']) == 0\n"
        "print('flax' in sys.modules)\n"
        "from jaxembed.losses import NextTokenModel\n"
        "print('flax' in sys.modules, NextTokenModel.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-3:-1] == ["False", "True jaxembed.next_token"]


def test_every_public_name_resolves():
    import jaxembed

    for name in jaxembed.__all__:
        assert getattr(jaxembed, name) is not None, name
    assert set(jaxembed.__all__) <= set(dir(jaxembed))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jaxembed.nope  # noqa: B018


def test_train_help_shows_real_defaults_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "default by objective" not in text
    assert "--out DIR output directory --objective" in text  # required: no default shown
    from jaxembed import objectives as ob

    for objective in ob.OBJECTIVES.values():  # the help quotes the records' defaults
        assert str(objective.lr) in text and str(objective.batch_size) in text, objective.name


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hs", "1"], "--hs: hierarchical softmax is not implemented"),
        (["--workers", "4"], "--workers: XLA uses all the cores"),
        (["--cbow-mean", "0"], "--cbow-mean: jaxembed's CBOW always averages"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_gensim_flags_without_meaning_are_refused_with_the_reason(capsys, flags, message):
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "c.txt", "--out", "d", *flags])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: jaxembed train")


def test_gensim_flags_with_a_meaning_are_accepted(capsys, corpus, tmp_path):
    out = tmp_path / "run"
    code, err = _train(capsys, corpus, out, "--sg", "0", "--size", "6", "--cbow-mean", "1")
    assert code == 0, err
    settings = __import__("json").loads((out / "run.json").read_text())["settings"]["train"]
    assert settings["objective"] == "cbow" and settings["dim"] == 6


def test_cache_dir_reads_the_text_once_and_trains_the_same_table(
    capsys, corpus, tmp_path, monkeypatch
):
    plain, cached, again = tmp_path / "plain", tmp_path / "cached", tmp_path / "again"
    cache = tmp_path / "ids"
    for out, flags in ((plain, ()), (cached, ("--cache-dir", str(cache)))):
        code, err = _train(capsys, corpus, out, *flags)
        assert code == 0, err
    assert (cache / "ids.npy").is_file()
    reads = []
    monkeypatch.setattr(corpus_module, "_read", lambda *a: reads.append(a))  # must not be needed
    code, err = _train(capsys, corpus, again, "--cache-dir", str(cache))
    assert code == 0 and not reads, err
    table = np.load(plain / "table.npy")
    for out in (cached, again):  # the same run: memory-mapped IDs, dropped pages and all
        np.testing.assert_array_equal(np.load(out / "table.npy"), table)


def test_the_console_script_turns_on_the_compilation_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
    monkeypatch.setattr(cli, "main", lambda: 7)
    assert cli.run() == 7
    import os

    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jaxembed" / "xla")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")  # the user's choice wins
    cli.run()
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"


def test_train_flag_choices_are_the_librarys():
    """`jaxembed train`'s parser spells out its choices (its module skips importing the library
    so that --help is fast): they must stay the library's."""
    from jaxembed import corpus, loop
    from jaxembed import mesh as jm
    from jaxembed import objectives as ob
    from jaxembed import train as tr
    from jaxembed.commands import train as train_command

    parser = argparse.ArgumentParser()
    train_command.register(parser.add_subparsers(dest="command"))
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = commands.choices["train"]._actions
    choices = {a.option_strings[0]: tuple(a.choices) for a in actions if a.choices}
    assert choices == {
        "--sg": (0, 1),  # gensim's spelling of --objective
        "--tokenizer": corpus.TOKENIZERS,
        "--batches": loop.BATCHES,
        "--optimizer": tr.OPTIMIZERS,
        "--update": tr.UPDATES,
        "--row-scale": ob.ROW_SCALES,
        "--split": jm.SPLITS,
        "--row-balance": ("on", "off"),  # TrainConfig.row_balance True / False (None: unset)
        "--table-dtype": tr.TABLE_DTYPES,
    }
