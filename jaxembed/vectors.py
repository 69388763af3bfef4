"""Using learned vectors: cosine similarity, nearest neighbours, analogies (king - man + woman).

Every query is one matrix product of unit vectors plus a top-k; many analogy questions at once
(`jaxembed.evaluate.analogy_top_k`) are chunks of one (chunk, V) product each. The rules follow
gensim's `KeyedVectors` so results agree with it:

- `most_similar`: 3CosAdd. The unit vectors of the query words, weighted +1 (positive) and -1
  (negative), are averaged and unit-normalised; candidates are scored by cosine and the query words
  themselves are never returned.
- `most_similar_cosmul`: 3CosMul (Levy and Goldberg 2014) with cosines shifted to [0, 1].
- Zero vectors score 0 against everything (gensim gives NaN).

Tables may be numpy or JAX arrays, and are computed on where they are: a numpy table (what
`load_vectors` gives) is queried with numpy, as gensim does, without importing JAX or copying the
table to a device; a JAX array (on a GPU, say) is queried with jitted JAX code.

Examples use GloVe 6B 50-d (`load_vectors("glove-6b-50d")`):

    >>> most_similar(table_VxD, vocab, positive=["king", "woman"], negative=["man"], topn=1)
    [('queen', 0.852...)]
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Sequence

import numpy as np

from jaxembed.checks import optional_positive_int, positive_int
from jaxembed.vocab import Vocab

# 3CosMul's guard against dividing by zero, as gensim has it.
_COSMUL_EPSILON = 1e-6


# ---------------------------------------------------------------------------------- similarity


def unit_rows(table_VxD):
    """Scales every row to unit L2 norm; zero rows stay zero (no NaN).

    Args:
      table_VxD: vectors, one per row (any leading shape works: the last axis is normalised).

    Returns:
      Array of the same shape whose nonzero rows have norm 1.

    Example:
      >>> unit_rows(jnp.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
      [[0.6..., 0.8...], [0.0, 0.0]]
    """
    xp, (table_VxD,) = _namespace(table_VxD)
    norms_Vx1 = xp.linalg.norm(table_VxD, axis=-1, keepdims=True)
    return table_VxD / xp.where(norms_Vx1 > 0, norms_Vx1, 1.0)


def cosine_similarity(a_ND, b_ND):
    """Cosine similarity of vectors taken in pairs (row i of `a` with row i of `b`).

    Args:
      a_ND, b_ND: vectors of the same shape, (D,) or (N, D).

    Returns:
      () or (N,) similarities in [-1, 1]; 0 where either vector is zero.

    Example:
      >>> float(cosine_similarity(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0])))
      0.7071...
    """
    xp, (a_ND, b_ND) = _namespace(a_ND, b_ND)
    return xp.sum(unit_rows(a_ND) * unit_rows(b_ND), axis=-1)


def similarity_matrix(x_NxD, y_MxD):
    """Cosine similarity of every row of `x` with every row of `y`.

    Args:
      x_NxD, y_MxD: two sets of vectors of the same dimension.

    Returns:
      (N, M) similarities; 0 wherever a vector is zero.

    Example:
      >>> similarity_matrix(jnp.eye(3), jnp.eye(3))  # one-hot vectors: all orthogonal
      Array([[1., 0., 0.], [0., 1., 0.], [0., 0., 1.]], dtype=float32)
    """
    _, (x_NxD, y_MxD) = _namespace(x_NxD, y_MxD)
    return unit_rows(x_NxD) @ unit_rows(y_MxD).T


# ------------------------------------------------------------------------------ word queries


def most_similar(
    table_VxD,
    vocab: Vocab,
    positive=(),
    negative=(),
    topn: int = 10,
    restrict_vocab: int | None = None,
) -> list[tuple[str, float]]:
    """The words nearest to positive minus negative words (3CosAdd, as gensim's `most_similar`).

    Args:
      table_VxD: the embedding table, row i for `vocab.index_to_key[i]`.
      vocab: the table's vocabulary.
      positive: words (or 1-D vectors, used as given) counted with weight +1; a single word is fine.
      negative: words (or vectors) counted with weight -1.
      topn: how many neighbours to return.
      restrict_vocab: only rank the first this many rows (the most frequent words if the vocabulary
        is in frequency order); None ranks all.

    Returns:
      Up to `topn` (word, cosine) pairs, best first, without the query words.

    Example:
      >>> most_similar(table, vocab, positive=["king", "woman"], negative=["man"], topn=2)
      [('queen', 0.852...), ('throne', 0.766...)]
    """
    table_VxD = check_table(table_VxD, vocab)
    positive_int("topn", topn)
    positive, negative = _as_list(positive), _as_list(negative)
    if not positive and not negative:
        raise ValueError("most_similar needs at least one positive or negative word; got none")
    vectors_QxD, exclude = _query_vectors(table_VxD, vocab, positive + negative, normalise=True)
    xp, _ = _namespace(table_VxD)
    weights_Q = xp.asarray([1.0] * len(positive) + [-1.0] * len(negative), dtype=np.float32)
    # gensim divides by the total weight before normalising; the direction, and so every score, is
    # the same either way.
    query_D = weights_Q @ vectors_QxD
    return _ranked(table_VxD, vocab, query_D, exclude, topn, restrict_vocab)


def similar_by_vector(
    table_VxD, vocab: Vocab, vector_D, topn: int = 10, restrict_vocab: int | None = None
) -> list[tuple[str, float]]:
    """The words whose vectors are nearest (by cosine) to any vector.

    Args:
      table_VxD, vocab: the embedding table and its vocabulary.
      vector_D: the query vector (D,); nothing is excluded, so a word's own vector finds itself.
      topn, restrict_vocab: as in `most_similar`.

    Returns:
      Up to `topn` (word, cosine) pairs, best first.

    Example:
      >>> similar_by_vector(table, vocab, table[vocab["tower"]], topn=2)
      [('tower', 1.0), ('towers', 0.877...)]
    """
    table_VxD = check_table(table_VxD, vocab)
    positive_int("topn", topn)
    query_D = _check_vector(table_VxD, vector_D)
    return _ranked(table_VxD, vocab, query_D, [], topn, restrict_vocab)


def most_similar_cosmul(
    table_VxD,
    vocab: Vocab,
    positive=(),
    negative=(),
    topn: int = 10,
    restrict_vocab: int | None = None,
) -> list[tuple[str, float]]:
    """Analogy by 3CosMul: prod((1 + cos(w, p)) / 2) / (prod((1 + cos(w, n)) / 2) + 1e-6).

    The formula of gensim's `most_similar_cosmul` (Levy and Goldberg 2014, eq. 4 with footnote 7):
    one large similarity cannot dominate as in 3CosAdd. Unlike gensim 4.4, which ignores it,
    `restrict_vocab` limits the candidates here.

    Args:
      table_VxD, vocab: the embedding table and its vocabulary.
      positive: words (unit vectors used) or 1-D vectors (used as given, as gensim does); at least one.
      negative: words or vectors in the denominator.
      topn, restrict_vocab: as in `most_similar`.

    Returns:
      Up to `topn` (word, score) pairs, best first, without the query words.

    Example:
      >>> most_similar_cosmul(table, vocab, ["king", "woman"], ["man"], topn=1)
      [('queen', 0.928...)]
    """
    table_VxD = check_table(table_VxD, vocab)
    positive_int("topn", topn)
    positive, negative = _as_list(positive), _as_list(negative)
    if not positive:
        raise ValueError("most_similar_cosmul needs at least one positive word; got none")
    positive_PxD, exclude = _query_vectors(table_VxD, vocab, positive, normalise=True)
    negative_NxD, exclude_negative = _query_vectors(table_VxD, vocab, negative, normalise=True)
    candidates_CxD = table_VxD[: count_candidates(table_VxD, restrict_vocab)]
    exclude_E = _padded_exclusions(exclude + exclude_negative, len(candidates_CxD))
    k = min(topn + len(exclude_E), len(candidates_CxD))
    scores_K, ids_K = _cosmul_top_k(candidates_CxD, positive_PxD, negative_NxD, exclude_E, k)
    return _pairs(vocab, ids_K, scores_K, topn)


def difference_norm(table_VxD, vocab: Vocab, a: str, b: str) -> float:
    """Euclidean length of vector(a) - vector(b) (the lecture's |man - woman|), raw vectors.

    Example:
      >>> difference_norm(table, vocab, "man", "woman")  # Google News word2vec: 1.73
      2.60...
    """
    table_VxD = check_table(table_VxD, vocab)
    i, j = _ids(vocab, [a, b])
    xp, _ = _namespace(table_VxD)
    return float(xp.linalg.norm(table_VxD[i] - table_VxD[j]))


def doesnt_match(table_VxD, vocab: Vocab, words: Sequence[str]) -> str:
    """The word farthest (by cosine) from the normalised mean of the words' unit vectors.

    gensim's rule (`rank_by_centrality`), except that an unknown word is a KeyError instead of being
    dropped with a warning.

    Example:
      >>> doesnt_match(table, vocab, ["breakfast", "cereal", "dinner", "lunch"])
      'cereal'
    """
    table_VxD = check_table(table_VxD, vocab)
    if isinstance(words, str):
        raise TypeError(f"doesnt_match takes a list of words, not a str; got {words!r}")
    if not words:
        raise ValueError("doesnt_match needs at least one word; got none")
    unit_NxD = unit_rows(table_VxD[np.asarray(_ids(vocab, words))])
    centre_D = unit_rows(unit_NxD.mean(axis=0))
    scores_N = np.asarray(unit_NxD @ centre_D).tolist()
    # gensim sorts (score, word) pairs and takes the last: ties go to the smaller word.
    return min(zip(scores_N, words, strict=True))[1]


# ------------------------------------------------------------------------- token tables


def trained_rows(table_VxD, vocab: Vocab):
    """(table, vocab) of the tokens seen in training (count > 0), in their order.

    A GPT-2 table has a row for every one of its 50,257 tokens, and the ones the corpus did not
    train (count 0 in vocab.txt) are still random: left in, they would be ranked as neighbours by
    chance. A vocabulary without counts (a vector file) is returned whole.

    Example:
      >>> table, vocab = trained_rows(np.eye(3), Vocab.from_keys(["a", "b", "c"], [4, 0, 1]))
      >>> vocab.index_to_key, table.shape
      (('a', 'c'), (2, 3))
    """
    table_VxD = check_table(table_VxD, vocab)
    kept_V = np.asarray(vocab.counts) > 0
    if kept_V.all() or not kept_V.any():
        return table_VxD, vocab
    return take_rows(table_VxD, vocab, np.flatnonzero(kept_V))


def take_rows(table_VxD, vocab: Vocab, ids, keys=None):
    """(table, vocab) of the rows `ids`, in that order, with their counts; `keys` renames them.

    Example:
      >>> _, vocab = take_rows(np.eye(3), Vocab.from_keys(["a", "b", "c"], [4, 0, 1]), [2, 0])
      >>> vocab.index_to_key, vocab.counts.tolist()
      (('c', 'a'), [1, 4])
    """
    ids = np.asarray(ids, np.int64)
    keys = [vocab.index_to_key[i] for i in ids] if keys is None else list(keys)
    return table_VxD[ids], Vocab.from_keys(keys, np.asarray(vocab.counts)[ids])


def words_of_tokens(table_VxD, vocab: Vocab):
    """A GPT-2 token table seen as a word table: the row of "Ġword" (the word inside text, with
    its leading space) becomes the row of "word"; other tokens are left out.

    Rows come most frequent first (by the vocabulary's counts), untrained ones (count 0) are left
    out, so `restrict_vocab` means what it means for a word table and the standard benchmarks
    score the words that are single GPT-2 tokens.

    Example:
      >>> keys = ["Ġking", "king", "Ġqueen", "ing"]
      >>> _, words = words_of_tokens(np.eye(4), Vocab.from_keys(keys, [3, 9, 5, 7]))
      >>> words.index_to_key
      ('queen', 'king')
    """
    from jaxembed.tokenize import gpt2_token_bytes

    table_VxD = check_table(table_VxD, vocab)
    counts_V = np.asarray(vocab.counts)
    rows, keys = [], []
    for i, key in enumerate(vocab.index_to_key):
        if not key.startswith("Ġ") or (counts_V.any() and counts_V[i] == 0):
            continue
        try:
            word = gpt2_token_bytes(key)[1:].decode("utf-8")
        except (ValueError, UnicodeDecodeError):  # half of a character, or no GPT-2 key
            continue
        if word and not word[0].isspace():
            rows.append(i)
            keys.append(word)
    order = sorted(range(len(rows)), key=lambda j: (-counts_V[rows[j]], rows[j]))
    return take_rows(table_VxD, vocab, [rows[j] for j in order], [keys[j] for j in order])


# ----------------------------------------------------------------------------------- internals


def _namespace(*arrays):
    """(jax.numpy, arrays) if any is a JAX array (or a tracer), else (numpy, numpy arrays).

    numpy inputs stay in numpy, so querying a numpy table never imports JAX.
    """
    jax = sys.modules.get("jax")  # no JAX array can exist before jax is imported
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        return jax.numpy, arrays
    return np, tuple(np.asarray(a) for a in arrays)


@functools.cache
def _jitted():
    """The JAX kernels, compiled on first use (importing this module does not import JAX)."""
    import jax
    import jax.numpy as jnp

    def drop(scores_V, exclude_E):
        return scores_V.at[exclude_E].set(-jnp.inf, mode="drop")

    @functools.partial(jax.jit, static_argnames=("k",))
    def top_k_cosine(table_VxD, query_D, exclude_E, k: int):
        return jax.lax.top_k(drop(unit_rows(table_VxD) @ unit_rows(query_D), exclude_E), k)

    @functools.partial(jax.jit, static_argnames=("k",))
    def cosmul_top_k(table_VxD, positive_PxD, negative_NxD, exclude_E, k: int):
        return jax.lax.top_k(
            drop(_cosmul_scores(table_VxD, positive_PxD, negative_NxD), exclude_E), k
        )

    return top_k_cosine, cosmul_top_k


def _cosmul_scores(table_VxD, positive_PxD, negative_NxD):
    xp, _ = _namespace(table_VxD, positive_PxD, negative_NxD)
    unit_VxD = unit_rows(table_VxD)
    numerator_V = xp.prod((1.0 + unit_VxD @ positive_PxD.T) / 2.0, axis=1)
    denominator_V = xp.prod((1.0 + unit_VxD @ negative_NxD.T) / 2.0, axis=1)
    return numerator_V / (denominator_V + _COSMUL_EPSILON)


def _numpy_top_k(scores_V, exclude_E, k):
    scores_V = np.array(scores_V, dtype=np.float32)
    scores_V[exclude_E[exclude_E < len(scores_V)]] = -np.inf
    ids_K = np.argpartition(-scores_V, k - 1)[:k] if k < len(scores_V) else np.arange(len(scores_V))
    ids_K = ids_K[np.lexsort((ids_K, -scores_V[ids_K]))]  # best first; ties: lower ID first
    return scores_V[ids_K], ids_K


def _top_k_cosine(table_VxD, query_D, exclude_E, k):
    if _namespace(table_VxD, query_D)[0] is np:
        return _numpy_top_k(unit_rows(table_VxD) @ unit_rows(query_D), exclude_E, k)
    return _jitted()[0](table_VxD, query_D, exclude_E, k)


def _cosmul_top_k(table_VxD, positive_PxD, negative_NxD, exclude_E, k):
    if _namespace(table_VxD, positive_PxD, negative_NxD)[0] is np:
        return _numpy_top_k(_cosmul_scores(table_VxD, positive_PxD, negative_NxD), exclude_E, k)
    return _jitted()[1](table_VxD, positive_PxD, negative_NxD, exclude_E, k)


def _ranked(table_VxD, vocab, query_D, exclude, topn, restrict_vocab):
    candidates_CxD = table_VxD[: count_candidates(table_VxD, restrict_vocab)]
    exclude_E = _padded_exclusions(exclude, len(candidates_CxD))
    k = min(topn + len(exclude_E), len(candidates_CxD))
    scores_K, ids_K = _top_k_cosine(candidates_CxD, query_D, exclude_E, k)
    return _pairs(vocab, ids_K, scores_K, topn)


def _pairs(vocab, ids_K, scores_K, topn):
    keys = vocab.index_to_key
    ranked = zip(np.asarray(ids_K).tolist(), np.asarray(scores_K).tolist(), strict=True)
    return [(keys[i], s) for i, s in ranked if s != -np.inf][:topn]


def _padded_exclusions(exclude, n_candidates):
    # A few fixed lengths keep the jitted functions from recompiling for every query size; the
    # padding ID is out of range and so dropped.
    size = 4 * max(1, -(-len(exclude) // 4))
    padded = list(exclude) + [n_candidates] * (size - len(exclude))
    return np.asarray(padded, dtype=np.int32)


def _query_vectors(table_VxD, vocab, items, normalise):
    """Stacks the vectors of words (unit, if `normalise`) and of given arrays; lists word IDs."""
    words = [item for item in items if isinstance(item, str)]
    ids = _ids(vocab, words)
    by_word = dict(zip(words, ids, strict=True))
    xp, _ = _namespace(table_VxD)
    rows = []
    for item in items:
        if isinstance(item, str):
            row = table_VxD[by_word[item]]
            rows.append(unit_rows(row) if normalise else row)
        else:
            rows.append(_check_vector(table_VxD, item))
    dim = table_VxD.shape[1]
    vectors_QxD = xp.stack(rows) if rows else xp.zeros((0, dim), table_VxD.dtype)
    return vectors_QxD, sorted(set(ids))


def _ids(vocab, words):
    keys = [token_for(vocab, w) for w in words]
    unknown = [w for w, key in zip(words, keys, strict=True) if key is None]
    if unknown:
        raise KeyError(_unknown_message(vocab, unknown))
    index = vocab.key_to_index
    return [index[key] for key in keys]


def token_for(vocab: Vocab, word: str) -> str | None:
    """The key a query word is looked up under, None if there is none.

    In a GPT-2 token vocabulary (`Vocab.byte_level`) a word is its token after a space, as in
    running text ("king" -> "Ġking"), else the token of the word itself ("ing"); elsewhere, the
    word itself.

    Example:
      >>> token_for(Vocab.from_keys(["Ġking", "king", "ing", "Ġthe", "Ġa"]), "king")
      'Ġking'
    """
    index = vocab.key_to_index
    if vocab.byte_level and word and not word.startswith("Ġ"):
        from jaxembed.tokenize import gpt2_key

        key = gpt2_key(b" " + word.encode("utf-8"))
        if key in index:
            return key
    return word if word in index else None


def _unknown_message(vocab, unknown):
    parts = []
    if vocab.byte_level:
        from jaxembed.tokenize import gpt2_pieces

        for word in dict.fromkeys(unknown):
            pieces = " + ".join(map(repr, gpt2_pieces(word)))
            parts.append(f"{word!r} (as a GPT-2 token, {word!r} after a space is {pieces})")
        noun = "word is" if len(parts) == 1 else "words are"
        return (
            f"{', '.join(parts)}: {noun} not one trained token of the {len(vocab)} - query one "
            "of the pieces, or a word that is one token"
        )
    for word in dict.fromkeys(unknown):
        close = _close_spellings(vocab, word)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        parts.append(f"{word!r}{hint}")
    noun = "word" if len(parts) == 1 else "words"
    return f"unknown {noun} {', '.join(parts)} - not among the {len(vocab)} words of the vocabulary"


def _close_spellings(vocab, word, n=3):
    # difflib over 400,000 keys takes about a second; a bucket of keys with the same first letter
    # and a similar length takes tens of milliseconds and finds the usual typos.
    lower = word.lower()
    bucket = [
        key
        for key in vocab.index_to_key
        if key[:1].lower() == lower[:1] and abs(len(key) - len(word)) <= 2
    ]
    close = difflib.get_close_matches(word, bucket, n=n)
    for variant in (lower, word.capitalize(), word.upper()):
        if variant != word and variant in vocab.key_to_index and variant not in close:
            close = [variant] + close[: n - 1]
    return close


def as_table(table_VxD):
    """The table as a 2-D float array; numpy stays numpy (no copy: queries convert only rows)."""
    jax = sys.modules.get("jax")
    if not isinstance(table_VxD, np.ndarray) and not (jax and isinstance(table_VxD, jax.Array)):
        table_VxD = np.asarray(table_VxD)
    if table_VxD.ndim != 2 or not _is_float(table_VxD.dtype):
        raise ValueError(
            f"the table must be a 2-D float array (V, D); got shape {table_VxD.shape} and "
            f"dtype {table_VxD.dtype}"
        )
    return table_VxD


def _is_float(dtype) -> bool:
    # bfloat16 (ml_dtypes) is no np.floating subtype, yet a float
    return np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16"


def check_table(table_VxD, vocab: Vocab):
    """Checks that the table is a 2-D float array with one row per vocabulary word.

    Returns the table (numpy and JAX arrays as they are, anything else through `np.asarray`).

    Example:
      >>> check_table(np.zeros((3, 2)), Vocab.from_keys(["a", "b"]))
      Traceback (most recent call last):
      ...
      ValueError: the table has 3 rows but the vocabulary has 2 words - ...
    """
    table_VxD = as_table(table_VxD)
    if len(table_VxD) != len(vocab):
        raise ValueError(
            f"the table has {len(table_VxD)} rows but the vocabulary has {len(vocab)} words - "
            "pass the vocabulary the table was built with (one row per word)"
        )
    return table_VxD


def _check_vector(table_VxD, vector_D):
    """The query vector as float32, in the table's array namespace, checked against its width."""
    xp, _ = _namespace(table_VxD)
    dim = table_VxD.shape[1]
    vector_D = xp.asarray(vector_D, dtype=np.float32)
    if vector_D.shape != (dim,):
        raise ValueError(f"a query vector must have shape ({dim},); got {vector_D.shape}")
    return vector_D


def count_candidates(table_VxD, restrict_vocab) -> int:
    """How many leading rows are candidates answers: restrict_vocab of them, or all."""
    restrict_vocab = optional_positive_int("restrict_vocab", restrict_vocab)
    return len(table_VxD) if restrict_vocab is None else min(restrict_vocab, len(table_VxD))


def _as_list(items):
    # gensim accepts None, one word or one vector in place of a list.
    if items is None:
        return []
    if isinstance(items, str) or (hasattr(items, "ndim") and items.ndim == 1):
        return [items]
    return list(items)
