"""Tests for jaxembed.evaluate: the same numbers as gensim's evaluate_word_analogies/_word_pairs."""

import itertools

import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxembed.evaluate import (
    BENCHMARKS,
    benchmark_path,
    evaluate_analogies,
    evaluate_word_pairs,
)
from jaxembed.vocab import Vocab

QUESTIONS_PER_SECTION = 25
DIM = 24


def _read_sections(path):
    sections, current = [], None
    with open(path) as f:
        for line in f:
            if line.startswith(": "):
                current = (line.strip(), [])
                sections.append(current)
            else:
                current[1].append(line.split())
    return sections


@pytest.fixture(scope="module")
def kv_factory():
    def make(words, table):
        kv = KeyedVectors(table.shape[1])
        kv.add_vectors(list(words), table.copy())
        return kv

    return make


@pytest.fixture(scope="module")
def analogy_file(tmp_path_factory):
    """A slice of Google's questions plus lines gensim must skip or treat specially."""
    lines = []
    for header, questions in _read_sections(benchmark_path("questions-words")):
        lines.append(header)
        lines += [" ".join(q) for q in questions[:QUESTIONS_PER_SECTION]]
    lines += [
        ": odd-lines",
        "too few words",
        "one two three four five",
        "",
        "king QUEEN Man woman",  # mixed case: only equal to known words case-insensitively
        "king king man man",  # repeated words
        "xyzzy queen man woman",  # unknown word
        ": empty-section",
    ]
    path = tmp_path_factory.mktemp("analogies") / "questions.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def vectors(analogy_file, kv_factory):
    """Vectors over the words of the benchmarks, with analogy structure and case variants.

    Each section adds its own random offset from first to second word of a pair, so some analogies
    come out right and some wrong. Case variants (near copies, placed before or after the original)
    exercise gensim's rules on case folding; a few benchmark words are left out (out of vocabulary).
    """
    rng = np.random.default_rng(0)
    table = {}
    for _, questions in _read_sections(analogy_file):
        offset = rng.normal(size=DIM)
        for x, y in itertools.chain.from_iterable((q[:2], q[2:]) for q in questions if len(q) == 4):
            if x not in table:
                table[x] = rng.normal(size=DIM) if y not in table else table[y] - offset
            if y not in table:
                table[y] = table[x] + offset + 1.3 * rng.normal(size=DIM)
    for name in ("wordsim353", "simlex999"):
        with open(benchmark_path(name)) as f:
            for line in f:
                if not line.startswith("#"):
                    for word in line.split("\t")[:2]:
                        table.setdefault(word, rng.normal(size=DIM))
    words = sorted(w for w in table if not w.startswith("xyz"))
    words = [w for w in words if rng.random() > 0.05]  # out-of-vocabulary words
    rng.shuffle(words)
    for word in list(rng.choice(words, size=60, replace=False)):
        variant = word.lower() if word != word.lower() else word.upper()
        table[variant] = table[word] + 0.05 * rng.normal(size=DIM)
        at = words.index(word) + int(rng.integers(-40, 40))
        words.insert(min(max(at, 0), len(words)), variant)
    table_VxD = np.stack([table[w] for w in words]).astype(np.float32)
    return table_VxD, Vocab.from_keys(words), kv_factory(words, table_VxD)


def _gensim_analogies(kv, path, **kwargs):
    score, sections = kv.evaluate_word_analogies(str(path), **kwargs)
    return score, sections[:-1], sections[-1]


# ----------------------------------------------------------------------------------- analogies


@pytest.mark.parametrize("restrict_vocab", [300000, 1500, 400, 7])
@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("dummy4unknown", [False, True])
def test_analogies_equal_gensim(
    vectors, analogy_file, restrict_vocab, case_insensitive, dummy4unknown
):
    table, vocab, kv = vectors
    options = dict(
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy4unknown,
    )
    ours = evaluate_analogies(table, vocab, analogy_file, **options)
    score, sections, total = _gensim_analogies(kv, analogy_file, **options)

    assert [s["section"] for s in ours["sections"]] == [s["section"] for s in sections]
    for mine, theirs in zip(ours["sections"], sections, strict=True):
        assert mine["correct_questions"] == theirs["correct"], mine["section"]
        assert mine["incorrect_questions"] == theirs["incorrect"], mine["section"]
        assert mine["correct"] == len(theirs["correct"])
        assert mine["incorrect"] == len(theirs["incorrect"])
    assert ours["correct"] == len(total["correct"])
    assert ours["attempted"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["accuracy"] == score


def test_analogy_fixture_is_informative(vectors, analogy_file):
    # The comparisons above mean little unless answers are both right and wrong, and the case and
    # out-of-vocabulary rules are actually exercised.
    table, vocab, _ = vectors
    result = evaluate_analogies(table, vocab, analogy_file)
    assert 0.2 < result["accuracy"] < 0.9
    assert result["oov"] > 0
    assert sum(1 for w in vocab if w.upper() != w and w.upper() in vocab) > 0
    odd = result["sections"][-2]
    assert odd["section"] == "odd-lines"
    assert odd["correct"] + odd["incorrect"] == 2  # the mixed-case and repeated-word lines
    assert result["sections"][-1]["accuracy"] == 0.0
    assert result["questions"] == 14 * QUESTIONS_PER_SECTION + 3


@pytest.mark.parametrize("case_insensitive, verdict", [(True, "correct"), (False, "incorrect")])
def test_case_variant_of_an_input_is_not_an_answer(tmp_path, kv_factory, case_insensitive, verdict):
    # woman + king - man: "KING" (a near copy of "king") scores above "queen". Case-folded, it is
    # the input "king" and is passed over, so "queen" answers; case-sensitive, "KING" answers.
    words = ["man", "woman", "king", "queen", "KING", "other"]
    table = np.asarray(
        [[0, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0.9, 0], [0, 0, 0, 1]],
        np.float32,
    )
    path = tmp_path / "q.txt"
    path.write_text(": gender\nman woman king queen\n")
    result = evaluate_analogies(
        table, Vocab.from_keys(words), path, case_insensitive=case_insensitive
    )
    assert result[verdict] == 1
    _, _, total = _gensim_analogies(
        kv_factory(words, table), path, case_insensitive=case_insensitive
    )
    assert len(total[verdict]) == 1


def test_table_and_vocabulary_sizes_must_match(analogy_file):
    with pytest.raises(ValueError, match="3 rows but the vocabulary has 2"):
        evaluate_analogies(np.ones((3, 2), np.float32), Vocab.from_keys(["a", "b"]), analogy_file)


@pytest.mark.slow
def test_full_google_analogies_equal_gensim(vectors):
    table, vocab, kv = vectors
    path = benchmark_path("questions-words")
    ours = evaluate_analogies(table, vocab, path, restrict_vocab=2000)
    score, _, total = _gensim_analogies(kv, path, restrict_vocab=2000)
    assert (ours["correct"], ours["incorrect"]) == (len(total["correct"]), len(total["incorrect"]))
    assert ours["accuracy"] == score


def test_question_before_header_is_refused(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("king queen man woman\n: section\n")
    table = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="line 1: a question before the first"):
        evaluate_analogies(table, Vocab.from_keys(["king", "queen"]), path)


def test_file_without_questions_is_refused(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text(": only-a-header\n")
    with pytest.raises(ValueError, match="no analogy questions"):
        evaluate_analogies(np.ones((1, 3), np.float32), Vocab.from_keys(["a"]), path)


# ---------------------------------------------------------------------------------- word pairs


@pytest.mark.parametrize("name", ["wordsim353", "simlex999"])
@pytest.mark.parametrize("restrict_vocab", [300000, 600])
@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("dummy4unknown", [False, True])
def test_word_pairs_equal_gensim(vectors, name, restrict_vocab, case_insensitive, dummy4unknown):
    table, vocab, kv = vectors
    options = dict(
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy4unknown,
    )
    ours = evaluate_word_pairs(table, vocab, benchmark_path(name), **options)
    pearson, spearman, oov_ratio = kv.evaluate_word_pairs(benchmark_path(name), **options)
    np.testing.assert_allclose(ours["pearson"], tuple(pearson), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours["spearman"], tuple(spearman), rtol=1e-5, atol=1e-7)
    assert ours["oov_ratio"] == pytest.approx(oov_ratio, rel=1e-12)
    assert ours["oov"] > 0


def test_word_pairs_skip_comments_and_bad_lines(tmp_path):
    vocab = Vocab.from_keys(["cat", "dog", "car", "tiger"])
    table = np.asarray([[1, 0], [1, 1], [0, 1], [2, 0.1]], np.float32)
    path = tmp_path / "pairs.tsv"
    path.write_text(
        "# comment\tline\t1\ncat\tdog\t7\nnot enough fields\ncat\tcar\t1\n"
        "cat\tunknown\t3\ntiger\tcat\tnot-a-number\ntiger\tcat\t9\n"
    )
    result = evaluate_word_pairs(table, vocab, path)
    assert (result["pairs"], result["oov"]) == (3, 1)
    assert result["oov_ratio"] == pytest.approx(25.0)
    # Model similarities follow the human ranking exactly.
    assert result["spearman"][0] == pytest.approx(1.0)


def test_word_pairs_all_unknown_is_refused(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("cat\tdog\t7\n")
    with pytest.raises(ValueError, match="no usable word pairs"):
        evaluate_word_pairs(np.ones((1, 2), np.float32), Vocab.from_keys(["bird"]), path)


def test_benchmark_paths_exist():
    for name in BENCHMARKS:
        with open(benchmark_path(name), encoding="utf8") as f:
            assert f.readline()
    with pytest.raises(ValueError, match="wordsim353"):
        benchmark_path("wordsim")
