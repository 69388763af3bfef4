"""Standard intrinsic evaluation of word vectors, with gensim's numbers but batched in JAX.

`evaluate_analogies` (Google's `questions-words.txt` format) and `evaluate_word_pairs` (WordSim-353,
SimLex-999) follow the rules of gensim 4.4's `KeyedVectors.evaluate_word_analogies` and
`evaluate_word_pairs` line by line - the same restricted vocabulary, case folding, out-of-vocabulary
counting and prediction rule - so on the same vectors they give the same numbers. gensim answers
one question at a time; here all questions are chunks of one matrix product.

    >>> result = evaluate_analogies(table_VxD, vocab, benchmark_path("questions-words"), 30000)
    >>> result["correct"], result["attempted"]  # GloVe 6B 50-d: accuracy 0.4969
    (7393, 14877)
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxembed.checks import check_ids, optional_positive_int, positive_int
from jaxembed.vectors import (
    as_table,
    check_table,
    cosine_similarity,
    count_candidates,
    unit_rows,
)
from jaxembed.vocab import Vocab

# Name -> file name of the evaluation sets gensim ships in gensim/test/test_data.
BENCHMARKS = {
    "questions-words": "questions-words.txt",  # Google analogies, 19,544 questions in 14 sections
    "wordsim353": "wordsim353.tsv",  # WordSim-353: 353 word pairs scored 0-10 by people
    "simlex999": "simlex999.txt",  # SimLex-999: 999 pairs scored 0-10 for similarity (not relatedness)
}
# One (chunk, V) float32 score matrix holds at most this many scores (64 MiB).
_SCORE_BUDGET = 2**24
# gensim looks at this many neighbours per analogy before giving up on an answer.
_ANALOGY_TOPN = 5


def benchmark_path(name: str) -> str:
    """Path of a standard evaluation set shipped with gensim (works offline).

    Args:
      name: one of "questions-words", "wordsim353", "simlex999".

    Returns:
      The file's path.

    Example:
      >>> round(evaluate_word_pairs(table, vocab, benchmark_path("wordsim353"))["spearman"][0], 4)
      0.5033
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    from gensim.test.utils import datapath

    return datapath(BENCHMARKS[name])


def evaluate_analogies(
    table_VxD,
    vocab: Vocab,
    path: str | os.PathLike,
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
) -> dict:
    """Accuracy on analogy questions "a b c expected" (3CosAdd), exactly as gensim counts it.

    Rules (gensim's): only the first `restrict_vocab` words count; a question with a word outside
    them is skipped (or, with `dummy4unknown`, counted wrong); lines that are not 4 words are
    ignored. The answer is the first of the 5 best 3CosAdd candidates that is not a, b or c
    (compared case-folded when `case_insensitive`: then "Paris" and "paris" are one word, and the
    vector of the first, usually the more frequent, is used).

    Args:
      table_VxD, vocab: the vectors and their vocabulary (frequency order makes the restriction
        meaningful).
      path: a file of ": section" header lines, each followed by lines of four words.
      restrict_vocab: how many leading words are in play; None: all.
      case_insensitive: compare words upper-cased.
      dummy4unknown: count out-of-vocabulary questions as wrong instead of skipping them.

    Returns:
      {"accuracy": correct / attempted (0.0 if none), "correct", "incorrect", "attempted" (their
       sum; counts unknown questions as incorrect when `dummy4unknown`),
       "questions": well-formed questions in the file, "oov": questions with an unknown word,
       "oov_ratio": percent of questions with an unknown word,
       "sections": [{"section", "accuracy", "correct", "incorrect", "correct_questions",
                     "incorrect_questions"}, ...] in file order (questions as 4-tuples, upper-cased
                     when `case_insensitive`)}.

    Example:
      >>> round(evaluate_analogies(table, vocab, benchmark_path("questions-words"), 30000)["accuracy"], 4)
      0.4969
    """
    table_VxD = check_table(table_VxD, vocab)
    optional_positive_int("restrict_vocab", restrict_vocab)  # 0 would score 0 of 0 questions
    ok_vocab = _ok_vocab(vocab, restrict_vocab, case_insensitive)
    sections, questions, n_questions, oov = _read_analogies(
        path, ok_vocab, case_insensitive, dummy4unknown
    )
    if n_questions == 0:
        raise ValueError(f"{path}: no analogy questions (lines of four words) found")
    known = [ids for _, _, ids in questions if ids is not None]
    correct_Q = np.zeros(0, dtype=bool)
    if known:
        ids_4xQ = np.asarray(known, dtype=np.int64).T
        correct_Q = _analogies_correct(table_VxD, vocab, ids_4xQ, restrict_vocab, case_insensitive)
    verdicts = iter(correct_Q.tolist())
    for section, words, ids in questions:
        outcome = "correct" if ids is not None and next(verdicts) else "incorrect"
        sections[section][f"{outcome}_questions"].append(words)
    for section in sections:
        section["correct"] = len(section["correct_questions"])
        section["incorrect"] = len(section["incorrect_questions"])
        section["accuracy"] = _accuracy(section["correct"], section["incorrect"])
    correct = sum(s["correct"] for s in sections)
    incorrect = sum(s["incorrect"] for s in sections)
    return {
        "accuracy": _accuracy(correct, incorrect),
        "correct": correct,
        "incorrect": incorrect,
        "attempted": correct + incorrect,
        "questions": n_questions,
        "oov": oov,
        "oov_ratio": oov / n_questions * 100,  # gensim's order of operations, bit for bit
        "sections": sections,
    }


def evaluate_word_pairs(
    table_VxD,
    vocab: Vocab,
    path: str | os.PathLike,
    delimiter: str = "\t",
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    encoding: str = "utf8",
) -> dict:
    """Correlation of cosine similarity with human judgements, exactly as gensim computes it.

    Rules (gensim's): lines starting with "#" are comments; lines that are not "word1, word2,
    score" are ignored; a pair with a word outside the first `restrict_vocab` words is skipped (or,
    with `dummy4unknown`, given similarity 0).

    Args:
      table_VxD, vocab: the vectors and their vocabulary.
      path: the word-pair file (e.g. `benchmark_path("wordsim353")`).
      delimiter: field separator.
      restrict_vocab: how many leading words are in play; None: all.
      case_insensitive: compare words upper-cased.
      dummy4unknown: score unknown pairs 0 instead of skipping them.
      encoding: the file's text encoding.

    Returns:
      {"pearson": (r, p-value), "spearman": (rho, p-value), "pairs": pairs used, "oov": pairs with
       an unknown word, "oov_ratio": percent, as gensim reports it}.

    Example:
      >>> round(evaluate_word_pairs(table, vocab, benchmark_path("simlex999"))["spearman"][0], 4)
      0.2631
    """
    table_VxD = check_table(table_VxD, vocab)
    optional_positive_int("restrict_vocab", restrict_vocab)  # 0 would score 0 of 0 questions
    ok_vocab = _ok_vocab(vocab, restrict_vocab, case_insensitive)
    gold, ids, oov = [], [], 0
    with open(path, encoding=encoding) as f:
        for line in f:
            if not line or line.startswith("#"):
                continue
            fields = line.split(delimiter)
            if case_insensitive:
                fields = [field.upper() for field in fields]
            try:
                a, b, score = fields
                score = float(score)
            except (ValueError, TypeError):
                continue
            if a not in ok_vocab or b not in ok_vocab:
                oov += 1
                if dummy4unknown:
                    gold.append(score)
                    ids.append(None)
                continue
            gold.append(score)
            ids.append((ok_vocab[a], ok_vocab[b]))
    if not gold:
        raise ValueError(
            f"{path}: no usable word pairs - wrong delimiter ({delimiter!r})? or every pair has a word "
            f"outside the first {restrict_vocab} of the vocabulary"
        )
    model = np.zeros(len(gold), dtype=np.float32)
    known = [i for i, pair in enumerate(ids) if pair is not None]
    if known:
        a_N, b_N = np.asarray([ids[i] for i in known], dtype=np.int64).T
        model[known] = np.asarray(cosine_similarity(table_VxD[a_N], table_VxD[b_N]))
    pearson = scipy.stats.pearsonr(gold, model)
    spearman = scipy.stats.spearmanr(gold, model)
    seen = len(gold) if dummy4unknown else len(gold) + oov
    return {
        "pearson": (float(pearson[0]), float(pearson[1])),
        "spearman": (float(spearman[0]), float(spearman[1])),
        "pairs": len(gold),
        "oov": oov,
        "oov_ratio": oov / seen * 100,  # gensim's order of operations, bit for bit
    }


# ----------------------------------------------------------------------------------- internals


def evaluate_suite(
    table_VxD,
    vocab: Vocab,
    restrict_vocab: int | None = 30000,
    names: tuple[str, ...] = tuple(BENCHMARKS),
) -> dict[str, dict]:
    """Scores on gensim's standard benchmarks, each as a small JSON-ready summary.

    Args:
      table_VxD, vocab: the vectors.
      restrict_vocab: analogies use only the first (most frequent) words, 30,000 as is customary
        (None: all); word pairs use gensim's default of 300,000.
      names: which of BENCHMARKS to score.

    Returns:
      {name: summary}: analogies give accuracy, correct, incorrect, attempted, questions, oov,
      oov_ratio and per-section accuracies; word pairs give spearman, pearson (and p-values),
      pairs, oov, oov_ratio. Each has "seconds"; a benchmark that cannot be scored (no word of it
      in the vocabulary) has {"error": why} instead.

    Example:
      >>> round(evaluate_suite(table_VxD, vocab)["wordsim353"]["spearman"], 4)
      0.5033
    """
    optional_positive_int("restrict_vocab", restrict_vocab)  # a bad value fails every benchmark
    results = {}
    for name in names:
        start = time.perf_counter()
        try:
            if name == "questions-words":
                raw = evaluate_analogies(table_VxD, vocab, benchmark_path(name), restrict_vocab)
                keep = ("accuracy", "correct", "incorrect", "attempted", "questions", "oov")
                sections = {
                    s["section"]: {k: s[k] for k in ("accuracy", "correct", "incorrect")}
                    for s in raw["sections"]
                }
                result = {k: raw[k] for k in (*keep, "oov_ratio")} | {"sections": sections}
            else:
                raw = evaluate_word_pairs(table_VxD, vocab, benchmark_path(name))
                result = {
                    "spearman": raw["spearman"][0],
                    "spearman_p": raw["spearman"][1],
                    "pearson": raw["pearson"][0],
                    "pearson_p": raw["pearson"][1],
                } | {k: raw[k] for k in ("pairs", "oov", "oov_ratio")}
        except ValueError as err:  # e.g. no benchmark word is in a small trained vocabulary
            result = {"error": str(err)}
        results[name] = result | {"seconds": round(time.perf_counter() - start, 3)}
    return results


# ---------------------------------------------------------------------------- batched analogies


def analogy_top_k(
    table_VxD,
    a_Q,
    b_Q,
    c_Q,
    topn: int = 1,
    restrict_vocab: int | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Answers many analogies "a is to b as c is to ?" at once by 3CosAdd (b + c - a).

    Each chunk of questions is one (chunk, candidates) matrix product and one top-k, jitted with a
    static chunk shape (the last chunk is padded), so memory stays bounded for any vocabulary.

    Args:
      table_VxD: the embedding table.
      a_Q, b_Q, c_Q: integer IDs of the question words, shape (Q,) each.
      topn: answers per question.
      restrict_vocab: candidates are the first this many rows; None: all rows.
      chunk_size: questions per chunk; None: as many as fit a 64 MiB score matrix.

    Returns:
      (ids_QxK, scores_QxK) numpy arrays, best first, K = min(topn, candidates). a, b and c are
      never answers; where fewer than K candidates remain, the missing entries have score -inf.

    Example:
      >>> ids, scores = analogy_top_k(table, vocab.encode(["man"]), vocab.encode(["king"]),
      ...                             vocab.encode(["woman"]))
      >>> vocab.decode(ids[:, 0])
      ['queen']
    """
    table_VxD = as_table(table_VxD)
    shapes = [np.shape(ids) for ids in (a_Q, b_Q, c_Q)]
    if len(set(shapes)) != 1 or len(shapes[0]) != 1:
        raise ValueError(f"a, b and c must be 1-D IDs of the same length; got shapes {shapes}")
    ids_3xQ = check_ids(np.stack([a_Q, b_Q, c_Q]), len(table_VxD))
    positive_int("topn", topn)
    n_questions = ids_3xQ.shape[1]
    n_candidates = count_candidates(table_VxD, restrict_vocab)
    k = min(topn, n_candidates)
    if n_questions == 0:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    if chunk_size is None:
        chunk_size = max(1, _SCORE_BUDGET // n_candidates)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    chunk_size = min(chunk_size, n_questions)
    n_chunks = -(-n_questions // chunk_size)
    padded_3xP = np.zeros((3, n_chunks * chunk_size), np.int32)
    padded_3xP[:, :n_questions] = ids_3xQ
    scores_PxK, ids_PxK = _analogy_chunks(
        table_VxD, padded_3xP.reshape(3, n_chunks, chunk_size), n_candidates, k
    )
    ids_QxK = np.asarray(ids_PxK).reshape(-1, k)[:n_questions].astype(np.int64)
    return ids_QxK, np.asarray(scores_PxK).reshape(-1, k)[:n_questions]


@functools.partial(jax.jit, static_argnames=("n_candidates", "k"))
def _analogy_chunks(table_VxD, ids_3xNxC, n_candidates: int, k: int):
    unit_VxD = unit_rows(table_VxD)
    candidates_MxD = unit_VxD[:n_candidates]

    def one_chunk(ids_3xC):
        a_C, b_C, c_C = ids_3xC
        query_CxD = unit_rows(unit_VxD[b_C] + unit_VxD[c_C] - unit_VxD[a_C])
        scores_CxM = query_CxD @ candidates_MxD.T
        rows_Cx1 = jnp.arange(len(a_C))[:, None]
        # IDs past the candidates are dropped, not clipped onto the last candidate.
        scores_CxM = scores_CxM.at[rows_Cx1, ids_3xC.T].set(-jnp.inf, mode="drop")
        return jax.lax.top_k(scores_CxM, k)

    scores_NxCxK, ids_NxCxK = jax.lax.map(one_chunk, jnp.moveaxis(ids_3xNxC, 1, 0))
    return scores_NxCxK, ids_NxCxK


def _ok_vocab(vocab, restrict_vocab, case_insensitive):
    """Key -> ID over the first `restrict_vocab` words; the first of several case variants wins."""
    keys = vocab.index_to_key[:restrict_vocab]
    ok_vocab = {}
    for i, key in enumerate(keys):
        ok_vocab.setdefault(key.upper() if case_insensitive else key, i)
    return ok_vocab


def _read_analogies(path, ok_vocab, case_insensitive, dummy4unknown):
    """Returns (sections, [(section index, words, ids or None)], question count, oov count)."""
    sections, questions, n_questions, oov = [], [], 0, 0
    # Binary, split on "\n" only, as gensim reads it.
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f):
            line = raw.decode("utf8")
            if line.startswith(": "):
                name = line.lstrip(": ").strip()
                sections.append(
                    {"section": name, "correct_questions": [], "incorrect_questions": []}
                )
                continue
            if not sections:
                raise ValueError(
                    f"{path}: line {line_no + 1}: a question before the first ': section' header - "
                    "start the file with a header line such as ': capital-common-countries'"
                )
            words = line.split()
            if len(words) != 4:
                continue
            n_questions += 1
            if case_insensitive:
                words = [w.upper() for w in words]
            if all(w in ok_vocab for w in words):
                questions.append((len(sections) - 1, tuple(words), [ok_vocab[w] for w in words]))
                continue
            oov += 1
            if dummy4unknown:
                questions.append((len(sections) - 1, tuple(words), None))
    return sections, questions, n_questions, oov


def _analogies_correct(table_VxD, vocab, ids_4xQ, restrict_vocab, case_insensitive):
    """gensim's verdict for each in-vocabulary question, from one batched top-5 search."""
    a_Q, b_Q, c_Q, expected_Q = ids_4xQ
    candidates_QxK, scores_QxK = analogy_top_k(
        table_VxD, a_Q, b_Q, c_Q, topn=_ANALOGY_TOPN, restrict_vocab=restrict_vocab
    )
    # gensim compares candidates by (case-folded) key; each key of the restricted vocabulary maps
    # to one ID, its first case variant, so comparing those IDs is the same test.
    n_candidates = len(table_VxD) if restrict_vocab is None else min(restrict_vocab, len(vocab))
    if case_insensitive:
        first_variant = _ok_vocab(vocab, restrict_vocab, case_insensitive=True)
        keys = vocab.index_to_key[:n_candidates]
        canonical_C = np.asarray([first_variant[key.upper()] for key in keys], dtype=np.int64)
    else:
        canonical_C = np.arange(n_candidates, dtype=np.int64)
    guess_QxK = canonical_C[candidates_QxK]
    found_QxK = scores_QxK > -np.inf
    is_input_QxK = (
        (guess_QxK == a_Q[:, None]) | (guess_QxK == b_Q[:, None]) | (guess_QxK == c_Q[:, None])
    )
    usable_QxK = found_QxK & ~is_input_QxK
    # gensim takes the first usable candidate; if there is none, the last candidate it looked at.
    first_Q = np.argmax(usable_QxK, axis=1)
    last_Q = np.maximum(found_QxK.sum(axis=1) - 1, 0)
    pick_Q = np.where(usable_QxK.any(axis=1), first_Q, last_Q)
    predicted_Q = np.take_along_axis(guess_QxK, pick_Q[:, None], axis=1)[:, 0]
    predicted_Q = np.where(found_QxK.any(axis=1), predicted_Q, -1)
    return predicted_Q == expected_Q


def _accuracy(correct, incorrect):
    return correct / (correct + incorrect) if correct + incorrect else 0.0
