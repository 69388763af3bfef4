"""Smoke tests of benchmarks/: the timing and measuring helpers, and each script at tiny sizes.

The scripts' real inputs (../shared/data, GloVe) are not used here; the end-to-end runs use files
gensim ships and are marked slow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import their helpers as `_bench`

import _bench  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(name: str, *args: str, tmp_path: Path, monkeypatch, capsys) -> dict:
    """Runs a script's main() in this process (its workers still run as subprocesses)."""
    out = tmp_path / f"{name}.json"
    argv = [str(BENCHMARKS / f"{name}.py"), *args, "--json-out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    _load(name).main()
    assert "|---|" in capsys.readouterr().out  # printed a markdown table
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("repeats", [1, 2, 3])
def test_interleaved_alternates_order_and_counts_calls(repeats):
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times, faults = _bench.interleaved(fns, repeats, numbers={"b": 3})
    expected = []
    for r in range(repeats):
        order = ["a", "b", "b", "b", "c"]
        expected += order if r % 2 == 0 else order[::-1]
    assert calls == expected
    for name in "abc":
        assert len(times[name]) == repeats and len(faults[name]) == repeats
        assert all(t > 0 for t in times[name])


def test_run_measured_reports_each_childs_own_peak():
    big = _bench.run_measured(
        [sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'1' * len(b[::4096])"]
    )
    small = _bench.run_measured([sys.executable, "-c", "import time; time.sleep(0.5)"])
    assert big["returncode"] == small["returncode"] == 0
    assert big["peak_rss_mib"] >= 300
    assert small["peak_rss_mib"] < 100  # not the earlier, bigger child's peak
    assert big["wall_s"] > 0


def test_run_measured_pins_cores_and_returns_output():
    done = _bench.run_measured(
        [sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"], cpus=1
    )
    assert done["stdout"].strip() == "1"
    failed = _bench.run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed["returncode"] == 3


def test_write_json_is_atomic_and_converts_numpy(tmp_path):
    path = tmp_path / "sub" / "out.json"
    _bench.write_json(str(path), {"a": np.float32(1.5), "b": np.arange(3), "c": np.int64(7)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": 7}
    assert os.listdir(path.parent) == ["out.json"]  # no temp file left behind
    with pytest.raises(TypeError):
        _bench.write_json(str(path), {"bad": object()})
    assert json.loads(path.read_text())["c"] == 7  # the old file survives a failed write
    assert os.listdir(path.parent) == ["out.json"]


def test_markdown_table_shape():
    table = _bench.markdown_table(["x", "y"], [[1, "a"], [2, "b"]])
    lines = table.splitlines()
    assert lines == ["| x | y |", "|---|---|", "| 1 | a |", "| 2 | b |"]


# ----------------------------------------------------------------------------- scripts


def test_lookup_routes_and_bandwidth_tiny(monkeypatch):
    lookup = _load("lookup")
    monkeypatch.setattr(lookup, "SAMPLE_S", 0.001)
    (row,) = lookup.compare_routes((32,), (16,), rounds=2, dense_max_cells=10**9)
    assert (row["vocab_size"], row["dim"]) == (32, 16)
    for name in ("gather", "one-hot", "Dense"):
        assert row[f"{name}_ms"] > 0
    assert row["one_hot_over_gather"] == pytest.approx(row["one-hot_ms"] / row["gather_ms"])
    rows = lookup.bandwidth([((2, 64), 16)], repeats=1, vocab_size=100)
    by_variant = {r["variant"]: r for r in rows}
    assert lookup.LOOKUP in by_variant and lookup.COPY in by_variant
    assert by_variant[lookup.COPY]["vs_numpy_copy_reused"] == 1.0
    out_bytes = 2 * 64 * 16 * 4
    for r in rows:
        assert r["gb_per_s"] == pytest.approx(2 * out_bytes / (r["ms"] / 1e3) / 1e9)
    found = lookup.targets([{**row, "vocab_size": 50_257, "dim": 768}], [])
    assert found[0]["met"] == (row["one_hot_over_gather"] >= lookup.SPEEDUP_TARGET)


def test_tokenization_script_tiny(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "text.txt"
    paragraph = (
        "It is a truth universally acknowledged, that a single man -- in 1811 -- wants a wife.\n"
    )
    corpus.write_text("\n".join([paragraph * 3] * 20))
    report = _run_script(
        "tokenization",
        "--corpus",
        str(corpus),
        "--repeats",
        "1",
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    rows = {r["tokenizer"]: r for r in report["rows"]}
    # Each line: 14 words, the number 1811 and 4 punctuation tokens (",", "--", "--", ".").
    assert rows["jaxembed split_words(text)"]["tokens"] == 60 * 19
    bpe = [r for r in report["rows"] if r["group"] == "GPT-2 BPE"]
    assert len({r["tokens"] for r in bpe if "(text)" not in r["tokenizer"]}) == 1
    assert all(r["tokens_per_s"] > 0 for r in report["rows"])


def test_evaluate_vs_gensim_script_on_small_vectors(tmp_path, monkeypatch, capsys):
    vectors = datapath("lee_fasttext.vec")
    report = _run_script(
        "evaluate_vs_gensim",
        "--quick",
        "--vectors",
        vectors,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert [c["case"].split(" ")[0] for c in report["cases"]] == ["analogies", "word", "word"]
    assert all(c["speedup"] > 0 for c in report["cases"])


@pytest.mark.slow
def test_train_vs_gensim_script_tiny(tmp_path, monkeypatch, capsys):
    report = _run_script(
        "train_vs_gensim",
        "--corpus", datapath("lee_background.cor"),
        "--objective", "skipgram",
        "--epochs", "1", "--dim", "16", "--min-count", "2",
        "--evaluators", "jaxembed", "gensim",
        tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    runs = {r["tool"]: r for r in report["runs"]}
    assert set(runs) == {"gensim", "jaxembed"}
    assert runs["gensim"]["words"] == runs["jaxembed"]["words"] == report["corpus_words"]
    assert runs["gensim"]["vocab_size"] == runs["jaxembed"]["vocab_size"]
    for run in runs.values():
        assert run["peak_rss_mib"] > 50 and run["words_per_s"] > 0
    (comparison,) = report["comparisons"]
    assert comparison["words_per_s_ratio"] == pytest.approx(
        runs["jaxembed"]["words_per_s"] / runs["gensim"]["words_per_s"]
    )


@pytest.mark.slow
def test_memory_script_tiny(tmp_path, monkeypatch, capsys):
    report = _run_script(
        "memory",
        "--quick",
        "--vocab",
        "2000",
        "--dim",
        "32",
        "--steps",
        "2",
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    runs = {r["config"]: r for r in report["runs"]}
    state_mib = 6 * 2000 * 32 * 4 / 2**20  # two tables, Adam's two moments each
    assert runs["Adam, dense"]["state_mib"] == pytest.approx(state_mib, rel=0.01)
    assert runs["Adam, dense"]["peak_rss_mib"] > runs["runtime only"]["rss_runtime_mib"]


@pytest.mark.parametrize("objective, sg", [("skipgram", 1), ("cbow", 0)])
def test_gensim_worker_trains_the_objective_it_is_asked_for(tmp_path, objective, sg):
    # The harness passes --objective as a one-element list (nargs="+"); gensim must still get sg=1
    # for skip-gram - a list compared with "skipgram" once silently gave CBOW.
    module = _load("train_vs_gensim")
    args = module.build_parser().parse_args(
        ["--worker-gensim", "--corpus", datapath("lee_background.cor"), "--out", str(tmp_path),
         "--objective", objective, "--epochs", "1", "--dim", "8", "--min-count", "5"]
    )  # fmt: skip
    args.epochs = 1
    module.gensim_worker(args)
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["sg"] == sg


def test_cli_startup_prints_its_table(tmp_path, monkeypatch, capsys):
    results = _run_script(
        "cli_startup", "--repeats", "1", tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    commands = {row["command"]: row for row in results["rows"]}
    assert commands["jaxembed --help"]["status"] in ("met", "missed")  # it ran
    assert all(row["seconds"] > 0 for row in results["rows"])


def test_word2vec_c_is_run_with_the_shared_settings_and_its_report_read(tmp_path):
    module = _load("train_vs_gensim")
    args = module.build_parser().parse_args(["--word2vec-c", "/opt/word2vec", "--epochs", "3"])
    cmd = module.word2vec_c_command(args, "corpus.txt", str(tmp_path), "cbow")
    flags = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert cmd[0] == "/opt/word2vec" and flags["-cbow"] == "1" and flags["-hs"] == "0"
    assert (flags["-size"], flags["-window"], flags["-negative"]) == ("200", "5", "5")
    assert (flags["-sample"], flags["-min-count"], flags["-iter"]) == ("0.0001", "5", "3")
    (tmp_path / "vectors.txt").write_text("3 2\n</s> 0 0\na 1 2\nb 3 4\n")
    stdout = (
        "Alpha: 0.04  Progress: 50.00%  Words/thread/sec: 80.00k  \rAlpha: 0.01  Progress: 99.9"
    )
    stdout += "0%  Words/thread/sec: 90.50k  \n"
    summary = module.word2vec_c_summary(args, str(tmp_path), {"stdout": stdout, "wall_s": 2.0}, 100)
    assert summary["vocab_size"] == 3 and summary["words"] == 300
    assert summary["words_per_second"] == 150.0
    assert summary["own_words_per_second"] == 90_500 * args.threads


@pytest.mark.slow
def test_batch_quality_script_tiny(tmp_path, monkeypatch, capsys):
    report = _run_script(
        "batch_quality",
        "--corpus", datapath("lee_background.cor"),
        "--batch-sizes", "256", "1024", "--cbow-batch-sizes", "64", "256", "--rules", "none", "cap",
        "--epochs", "1", "--dim", "16", "--min-count", "2",
        tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    runs = [(r["objective"], r["batch_size"], r["rule"]) for r in report["runs"]]
    assert runs == [
        ("skipgram", 256, "none"), ("skipgram", 1024, "none"), ("skipgram", 1024, "cap"),
        ("cbow", 64, "none"), ("cbow", 256, "none"), ("cbow", 256, "cap"),
    ]  # fmt: skip
    for run in report["runs"]:
        assert "error" not in run, run
        assert "--batch-size" in run["command"] and ("--row-scale cap" in run["command"]) == (
            run["rule"] == "cap"
        )
        assert run["analogy_gap_points"] == pytest.approx(
            100
            * (
                run["analogy_accuracy"]
                - report["runs"][0 if run["objective"] == "skipgram" else 3]["analogy_accuracy"]
            )
        )


def test_host_pipeline_script_counts_every_example_whatever_the_threads(
    tmp_path, monkeypatch, capsys
):
    from jaxembed import data
    from jaxembed.corpus import read_corpus

    host_pipeline = _load("host_pipeline")
    corpus = read_corpus(datapath("lee_background.cor"), 5)
    parts = host_pipeline.split_corpus(corpus, 3)
    assert sum(len(p.ids_N) for p in parts) == len(corpus.ids_N)
    np.testing.assert_array_equal(np.concatenate([p.ids_N for p in parts]), corpus.ids_N)
    report = _run_script(
        "host_pipeline",
        "--corpus", datapath("lee_background.cor"), "--threads", "1", "2", "--repeats", "1",
        tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert {(r["objective"], r["threads"]) for r in report["results"]} == {
        (o, t) for o in ("skipgram", "cbow") for t in (1, 2)
    }
    # One thread over the whole corpus: its pairs are exactly the stream's.
    pairs = sum(
        int(b["mask_B"].sum())
        for b in data.skipgram_batches(corpus, 5, 1e-4, 4096, seed=0, epoch=0)
    )
    (one,) = [r for r in report["results"] if r["objective"] == "skipgram" and r["threads"] == 1]
    assert one["examples_per_s"] * one["seconds"] == pytest.approx(pairs)


def test_train_step_names_the_rule_and_passes_that_ran(monkeypatch, capsys):
    argv = ["train_step.py", "--vocab", "300", "--dim", "8", "--batch", "4096", "8192",
            "--update", "sparse", "--share-negatives", "64", "--steps", "1", "--repeats", "1",
            "--row-passes", "1", "2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    _load("train_step").main()
    lines = [line for line in capsys.readouterr().out.splitlines() if "ms/step" in line]
    ran = [line.split(":")[0].split("G=")[1].split()[1:] for line in lines]
    # plain SGD at the default batch whatever the passes; newton above it, once or twice
    assert ran == [["none"]] * 2 + [["newton"], ["newton", "x2"]], lines


def test_train_step_names_the_directions_a_rule_resolves(monkeypatch, capsys):
    argv = ["train_step.py", "--vocab", "300", "--dim", "8", "--batch", "8192", "--update",
            "sparse", "--share-negatives", "64", "--steps", "1", "--repeats", "1",
            "--row-scale", "implicit", "newton", "--row-directions", "1", "2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    _load("train_step").main()
    lines = [line for line in capsys.readouterr().out.splitlines() if "ms/step" in line]
    ran = [line.split(":")[0].split("G=")[1].split()[1:] for line in lines]
    want = [["implicit", "k1"], ["implicit", "k2"], ["newton"], ["newton", "k2"]]
    assert ran == want, lines


def test_train_step_counts_half_the_bytes_of_bfloat16_tables(monkeypatch, capsys):
    argv = ["train_step.py", "--vocab", "300", "--dim", "8", "--batch", "4096", "--update",
            "sparse", "--steps", "1", "--repeats", "1", "--table-dtype", "float32", "bfloat16"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    module = _load("train_step")
    module.main()
    lines = [line for line in capsys.readouterr().out.splitlines() if "ms/step" in line]
    ran = [line.split(":")[0].split("G=")[1].split()[1:] for line in lines]
    assert ran == [["none"], ["none", "bf16"]], lines
    wide, half = (module.TrainConfig(dim=8, table_dtype=t) for t in ("float32", "bfloat16"))
    assert module.row_bytes(wide, 4096) == 2 * module.row_bytes(half, 4096)


def test_batch_quality_shuffles_the_corpus_lines_by_seed(tmp_path):
    lines = [f"line {i} of words\n" for i in range(50)]
    copies = []
    for seed in (0, 0, 1):
        path = tmp_path / f"corpus{len(copies)}.txt"
        path.write_text("".join(lines))
        _load("batch_quality").shuffle_lines(str(path), seed)
        copies.append(path.read_text().splitlines(keepends=True))
    assert sorted(copies[0]) == sorted(lines) and copies[0] != lines  # the same lines, reordered
    assert copies[0] == copies[1] and copies[0] != copies[2]  # by the seed


def test_common_direction_measures_and_takes_off_a_shared_vector():
    module = _load("common_direction")
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6000, 50)).astype(np.float32)
    shared = rng.normal(size=50).astype(np.float32)
    shared *= 20 / np.linalg.norm(shared)  # rows have norm ~7: cosine to it ~0.94
    plain = module.common_direction(table)
    assert plain < 0.05  # random directions: near none
    assert module.common_direction(table + shared) > 0.9  # one vector dominates every row
    assert module.common_direction(module.without_mean(table + shared)) == pytest.approx(
        plain, abs=0.02
    )


def test_common_direction_script_on_small_vectors(tmp_path, monkeypatch, capsys):
    report = _run_script(
        "common_direction", datapath("lee_fasttext.vec"),
        tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    (run,) = report["runs"]
    assert 0 < run["common_direction"] <= 1
    assert -1 <= run["wordsim353"] <= 1 and -1 <= run["wordsim353_without_mean"] <= 1
    assert run["wordsim353"] != run["wordsim353_without_mean"]  # the mean was taken off
