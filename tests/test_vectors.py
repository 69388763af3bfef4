"""Tests for jaxembed.vectors: cosine similarity, neighbours and analogies, checked against gensim."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxembed.evaluate import analogy_top_k
from jaxembed.vectors import (
    check_table,
    cosine_similarity,
    difference_norm,
    doesnt_match,
    most_similar,
    most_similar_cosmul,
    similar_by_vector,
    similarity_matrix,
    unit_rows,
)
from jaxembed.vocab import Vocab

# 32 words; "King" and "Queen" are case variants placed near their lowercase forms.
WORDS = (
    "the man woman king queen boy girl uncle aunt nephew niece prince princess father mother "
    "son daughter paris france rome italy tokyo japan apple banana dog cat paper water King "
    "Queen tower"
).split()
DIM = 16


def _structured_table(seed=0):
    """Random vectors with a shared male->female offset, so king - man + woman lands near queen."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(len(WORDS), DIM)).astype(np.float32)
    index = {w: i for i, w in enumerate(WORDS)}
    female = rng.normal(size=DIM).astype(np.float32) * 2
    for male, fem in [
        ("man", "woman"),
        ("king", "queen"),
        ("boy", "girl"),
        ("uncle", "aunt"),
        ("nephew", "niece"),
        ("prince", "princess"),
        ("father", "mother"),
        ("son", "daughter"),
    ]:
        table[index[fem]] = table[index[male]] + female + 0.3 * rng.normal(size=DIM)
    table[index["King"]] = table[index["king"]] + 0.1 * rng.normal(size=DIM)
    table[index["Queen"]] = table[index["queen"]] + 0.1 * rng.normal(size=DIM)
    return table


TABLE = _structured_table()
VOCAB = Vocab.from_keys(WORDS)


@pytest.fixture(scope="module")
def kv():
    kv = KeyedVectors(DIM)
    kv.add_vectors(list(WORDS), TABLE.copy())
    return kv


def _assert_same_ranking(ours, theirs, rtol=1e-5):
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=rtol, atol=1e-6)


# ---------------------------------------------------------------------------------- similarity


class UnitRowsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_unit_norms_and_zero_rows(self):
        table = jnp.asarray([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
        out = self.variant(unit_rows)(table)
        np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], rtol=1e-6)
        assert not np.isnan(np.asarray(out)).any()

    @chex.variants(with_jit=True, without_jit=True)
    def test_similarity_matrix_matches_pairwise_formula(self):
        x, y = TABLE[:5], TABLE[5:12]
        expected = (x @ y.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1))
        out = self.variant(similarity_matrix)(x, y)
        chex.assert_shape(out, (5, 7))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_cosine_similarity_of_pairs(self):
        a, b = TABLE[:6], TABLE[6:12]
        expected = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        np.testing.assert_allclose(self.variant(cosine_similarity)(a, b), expected, rtol=1e-5)
        single = self.variant(cosine_similarity)(a[0], b[0])
        chex.assert_shape(single, ())
        np.testing.assert_allclose(single, expected[0], rtol=1e-5)


def test_one_hot_vectors_are_all_orthogonal():
    # SPEC demonstration 2: distinct one-hot vectors have cosine 0 (and themselves 1).
    np.testing.assert_array_equal(similarity_matrix(jnp.eye(6), jnp.eye(6)), np.eye(6))


def test_zero_vectors_give_zero_not_nan():
    zero = jnp.zeros((3, 4))
    assert np.all(np.asarray(similarity_matrix(zero, jnp.ones((2, 4)))) == 0)
    assert float(cosine_similarity(jnp.zeros(4), jnp.ones(4))) == 0.0


# ------------------------------------------------------------------------ agreement with gensim


@pytest.mark.parametrize(
    "positive, negative, topn, restrict_vocab",
    [
        (["king", "woman"], ["man"], 5, None),
        (["king"], [], 10, None),
        ("tower", None, 3, None),  # one word, as gensim allows
        (["paris", "italy"], ["france"], 4, 20),
        (["uncle", "niece"], ["nephew"], 31, None),  # more than there are candidates
        ([], ["water"], 6, None),
    ],
)
def test_most_similar_equals_gensim(kv, positive, negative, topn, restrict_vocab):
    ours = most_similar(TABLE, VOCAB, positive, negative, topn=topn, restrict_vocab=restrict_vocab)
    theirs = kv.most_similar(positive, negative, topn=topn, restrict_vocab=restrict_vocab)
    _assert_same_ranking(ours, theirs)
    queries = [positive] if isinstance(positive, str) else positive + negative
    assert not set(queries) & {w for w, _ in ours}


def test_king_plus_woman_minus_man_is_queen():
    # "Queen" is a near copy of "queen", so the two share the top.
    top2 = most_similar(TABLE, VOCAB, ["king", "woman"], ["man"], topn=2)
    assert sorted(w for w, _ in top2) == ["Queen", "queen"]


def test_vectors_mix_with_words_as_gensim(kv):
    vector = TABLE[VOCAB.key_to_index["paper"]] * 3.0
    ours = most_similar(TABLE, VOCAB, positive=["water", vector], topn=5)
    theirs = kv.most_similar(positive=["water", vector], topn=5)
    _assert_same_ranking(ours, theirs)


@pytest.mark.parametrize("word, restrict_vocab", [("tower", None), ("queen", 12), ("dog", 1)])
def test_similar_by_vector_equals_gensim(kv, word, restrict_vocab):
    vector = TABLE[VOCAB.key_to_index[word]]
    ours = similar_by_vector(TABLE, VOCAB, vector, topn=4, restrict_vocab=restrict_vocab)
    theirs = kv.similar_by_vector(vector, topn=4, restrict_vocab=restrict_vocab)
    _assert_same_ranking(ours, theirs)
    if restrict_vocab is None:
        assert ours[0] == (word, pytest.approx(1.0, abs=1e-6))


@pytest.mark.parametrize(
    "positive, negative",
    [(["king", "woman"], ["man"]), (["tokyo"], []), (["rome", "france"], ["paris", "apple"])],
)
@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")
def test_most_similar_cosmul_equals_gensim(kv, positive, negative):
    ours = most_similar_cosmul(TABLE, VOCAB, positive, negative, topn=6)
    theirs = kv.most_similar_cosmul(positive, negative, topn=6)
    _assert_same_ranking(ours, theirs)
    assert not set(positive + negative) & {w for w, _ in ours}


@pytest.mark.parametrize(
    "words",
    [
        ["apple", "banana", "dog", "paper"],
        ["king", "queen", "prince", "tokyo"],
        ["man", "woman", "boy", "girl", "water"],
        ["cat"],
    ],
)
def test_doesnt_match_equals_gensim(kv, words):
    assert doesnt_match(TABLE, VOCAB, words) == kv.doesnt_match(words)


@pytest.mark.parametrize("a, b", [("man", "woman"), ("nephew", "niece"), ("paper", "water")])
def test_difference_norm_is_euclidean_distance(a, b):
    index = VOCAB.key_to_index
    expected = np.linalg.norm(TABLE[index[a]].astype(np.float64) - TABLE[index[b]])
    assert difference_norm(TABLE, VOCAB, a, b) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------- batched analogies


@pytest.mark.parametrize("chunk_size", [1, 3, 7, None])
@pytest.mark.parametrize("restrict_vocab", [None, 20])
def test_analogy_top_k_equals_one_query_at_a_time(chunk_size, restrict_vocab):
    rng = np.random.default_rng(1)
    a, b, c = rng.integers(0, len(WORDS), size=(3, 10))
    ids, scores = analogy_top_k(
        TABLE, a, b, c, topn=3, restrict_vocab=restrict_vocab, chunk_size=chunk_size
    )
    chex.assert_shape([ids, scores], (10, 3))
    keys = VOCAB.index_to_key
    for q in range(10):
        expected = most_similar(
            TABLE, VOCAB, [keys[b[q]], keys[c[q]]], [keys[a[q]]], 3, restrict_vocab
        )
        assert [keys[i] for i in ids[q]] == [w for w, _ in expected]
        np.testing.assert_allclose(scores[q], [s for _, s in expected], rtol=1e-5, atol=1e-6)
        assert not {a[q], b[q], c[q]} & set(ids[q].tolist())


def test_analogy_top_k_marks_missing_candidates():
    # 4 candidates minus 3 inputs leaves 1: the other two answers are -inf.
    ids, scores = analogy_top_k(TABLE, [0], [1], [2], topn=3, restrict_vocab=4)
    assert ids[0, 0] == 3 and np.isfinite(scores[0, 0])
    assert np.all(scores[0, 1:] == -np.inf)


def test_analogy_top_k_without_questions():
    ids, scores = analogy_top_k(TABLE, [], [], [], topn=2)
    chex.assert_shape([ids, scores], (0, 2))


# --------------------------------------------------------------------------------- bad inputs


def test_unknown_word_is_named_with_suggestions():
    with pytest.raises(
        KeyError, match=r"'kingg' \(did you mean 'king'.*'TOWER' \(did you mean 'tower'"
    ):
        most_similar(TABLE, VOCAB, ["kingg", "TOWER"])


@pytest.mark.parametrize(
    "call",
    [
        lambda: most_similar_cosmul(TABLE, VOCAB, ["queen"], ["xyzzy"]),
        lambda: doesnt_match(TABLE, VOCAB, ["cat", "xyzzy"]),
        lambda: difference_norm(TABLE, VOCAB, "xyzzy", "cat"),
    ],
)
def test_unknown_word_everywhere(call):
    with pytest.raises(KeyError, match="xyzzy"):
        call()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: most_similar(TABLE, VOCAB), "at least one"),
        (lambda: most_similar_cosmul(TABLE, VOCAB, [], ["man"]), "at least one positive"),
        (lambda: doesnt_match(TABLE, VOCAB, []), "at least one"),
        (lambda: most_similar(TABLE, VOCAB, ["king"], topn=0), "topn must be a positive"),
        (lambda: most_similar(TABLE, VOCAB, ["king"], restrict_vocab=0), "restrict_vocab"),
        (lambda: similar_by_vector(TABLE, VOCAB, np.ones(3)), r"shape \(16,\)"),
        (lambda: most_similar(TABLE[:-1], VOCAB, ["king"]), "31 rows but the vocabulary has 32"),
        (lambda: check_table(np.ones(5), VOCAB), "2-D float"),
        (lambda: analogy_top_k(TABLE, [0], [1], [99]), r"ids must be in \[0, 32\); got 99"),
        (lambda: analogy_top_k(TABLE, [0, 1], [1], [2]), "1-D IDs of the same length"),
    ],
)
def test_bad_input_is_refused_with_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_zero_vectors_never_give_nan():
    table = TABLE.copy()
    zero = VOCAB.key_to_index["paper"]
    table[zero] = 0.0
    every = len(WORDS)
    add = dict(most_similar(table, VOCAB, ["king", "woman"], ["man"], topn=every))
    assert add["paper"] == 0.0 and not np.isnan(list(add.values())).any()
    from_zero = most_similar(table, VOCAB, ["paper"], topn=every)  # the query itself is zero
    assert [s for _, s in from_zero] == [0.0] * (every - 1)
    mul = dict(most_similar_cosmul(table, VOCAB, ["cat"], ["dog"], topn=every))
    assert mul["paper"] == pytest.approx(0.5 / (0.5 + 1e-6))
    assert not np.isnan(list(mul.values())).any()
    _, scores = analogy_top_k(table, [zero], [1], [2], topn=5)
    assert np.isfinite(scores).all()


# ------------------------------------------------------------------- numpy tables stay in numpy


@pytest.mark.parametrize(
    "query",
    [
        lambda t: most_similar(t, VOCAB, ["king", "woman"], ["man"], topn=5),
        lambda t: most_similar(t, VOCAB, ["paris", TABLE[3]], ["france"], topn=31),
        lambda t: most_similar(t, VOCAB, ["uncle"], topn=4, restrict_vocab=9),
        lambda t: most_similar_cosmul(t, VOCAB, ["king", "woman"], ["man"], topn=6),
        lambda t: similar_by_vector(t, VOCAB, TABLE[5], topn=3),
        lambda t: [(doesnt_match(t, VOCAB, ["dog", "cat", "paris"]), 0.0)],
        lambda t: [("norm", difference_norm(t, VOCAB, "man", "woman"))],
    ],
)
def test_numpy_and_jax_tables_give_the_same_answers(query):
    _assert_same_ranking(query(TABLE), query(jnp.asarray(TABLE)))


def test_querying_a_numpy_table_does_not_import_jax(tmp_path):
    # `jaxembed similar` on a vector file: numpy all the way, as gensim (JAX's import is ~2 s).
    import subprocess
    import sys

    path = tmp_path / "v.txt"
    path.write_text("3 2\nking 1 0\nqueen 0.9 0.1\napple 0 1\n")
    code = (
        "import sys\n"
        "from jaxembed.io import load_vectors\n"
        "from jaxembed.vectors import most_similar\n"
        f"table, vocab = load_vectors({str(path)!r})\n"
        "print(most_similar(table, vocab, ['king'], topn=1))\n"
        "print(sorted(m for m in sys.modules if m == 'jax' or m.startswith('jax.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    answer, jax_modules = out.stdout.splitlines()
    assert answer.startswith("[('queen', 0.9938")  # 0.9 / |(0.9, 0.1)|
    assert jax_modules == "[]"
