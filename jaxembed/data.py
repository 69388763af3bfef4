"""Corpus pipeline for learning tables: text files -> vocabulary + int32 IDs -> training batches.

`read_corpus` streams plain, .xz, .gz or .bz2 files (found by their magic bytes) in 1 MiB blocks, so
a 100 MB single line (text8) never becomes one Python string or a list of the corpus. One pass both
counts the words and stores them as provisional int32 IDs; the frequency vocabulary then maps them
to final IDs, dropping words below `min_count` as gensim does. Sentences are lines, cut into pieces
of at most 10,000 words (gensim's MAX_WORDS_IN_BATCH, as `LineSentence` and `Text8Corpus` do);
word2vec windows never cross them. Invalid UTF-8 is replaced by U+FFFD, counted and warned about.

The batch functions follow word2vec.c / gensim: frequent words are subsampled afresh each epoch,
then each kept word gets a shrunk window `window - b`, b uniform in [0, window); negatives come
from counts ** 0.75 (`noise_distribution`; the train step draws them on device). The stream is a
pure function of (seed, epoch): chunk k of ~1M words uses `np.random.default_rng([seed, epoch, k])`,
so `start_batch=k` reproduces the tail of the full stream (resume after a checkpoint).

    >>> corpus = read_corpus(["text8.xz"], min_count=5)
    >>> for batch in prefetch(skipgram_batches(corpus, 5, 1e-4, 4096, seed=0, epoch=0)):
    ...     state, metrics = train_step(state, batch)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import lzma
import os
import queue
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import jax
import numpy as np

from jaxembed.files import atomic_open
from jaxembed.io import open_compressed
from jaxembed.vocab import Vocab

MAX_SENTENCE_LENGTH = 10_000  # gensim's MAX_WORDS_IN_BATCH: longer lines are cut into pieces
_BLOCK_BYTES = 1 << 20  # bytes read at a time
_CHUNK_TOKENS = 1 << 20  # corpus words per batch-generation chunk (one RNG stream each)
_WHITESPACE = b" \n\t\r\x0b\x0c"
_CACHE_FILES = ("ids.npy", "sentence_starts.npy", "vocab.txt", "corpus.json")


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """A tokenized corpus: vocabulary, the words as IDs, and sentence boundaries."""

    vocab: Vocab  # frequency-ordered vocabulary of the words kept (no specials)
    ids_N: np.ndarray  # int32 (N,): the corpus as IDs, words outside the vocabulary dropped
    sentence_starts: np.ndarray  # int64 (S+1,): sentence s is ids_N[starts[s] : starts[s + 1]]
    n_raw_words: int  # words read, before dropping rare ones (gensim's "raw words", for progress)
    n_undecodable: int = 0  # invalid UTF-8 sequences replaced by U+FFFD while reading


# ---------------------------------------------------------------------------- reading


def read_corpus(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    min_count: int = 5,
    max_size: int | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_sentence_length: int = MAX_SENTENCE_LENGTH,
) -> Corpus:
    """Reads text files into a `Corpus` (one streaming pass; memory: 8 bytes per word).

    Args:
      paths: one file or a list, read in order; plain, .xz, .gz or .bz2 (detected by magic bytes).
        Words are separated by whitespace (str.split); each line is a sentence.
      min_count: drop words seen fewer times (gensim's min_count).
      max_size: keep at most this many of the most frequent words.
      cache_dir: if given, the IDs are written there (np.memmap, for corpora bigger than memory) and
        a later call with the same files and settings loads them instead of reading the text again.
      max_sentence_length: lines longer than this are cut into several sentences.

    Returns:
      The Corpus. Undecodable bytes are replaced by U+FFFD and reported with a UnicodeWarning.

    Example:
      >>> corpus = read_corpus("corpus-en-11m.txt.xz", min_count=5)
      >>> len(corpus.vocab), corpus.n_raw_words
      (61286, 10818076)
    """
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
    _check_positive(min_count=min_count, max_sentence_length=max_sentence_length)
    if not paths:
        raise ValueError("no corpus files given - pass at least one text file")
    for path in paths:
        if os.path.isdir(path):
            raise ValueError(f"{path} is a directory - pass the text files inside it")
        if not os.path.exists(path):
            raise FileNotFoundError(f"corpus file {path} does not exist - check the path")
    settings = {
        "min_count": min_count,
        "max_size": max_size,
        "max_sentence_length": max_sentence_length,
    }
    source = {"files": [_fingerprint(p) for p in paths], **settings}
    if cache_dir is not None and _cache_source(cache_dir) == source:
        return load_corpus(cache_dir)
    if cache_dir is None:
        return _read(paths, min_count, max_size, max_sentence_length, None)
    _invalidate(cache_dir)
    corpus = _read(paths, min_count, max_size, max_sentence_length, os.fspath(cache_dir))
    _write_meta(corpus, cache_dir, source)
    return load_corpus(cache_dir)


def _read(paths, min_count, max_size, max_sentence_length, cache_dir) -> Corpus:
    # word -> provisional ID in order of first appearance; a new word's ID is assigned in C
    index: dict[str, int] = collections.defaultdict(itertools.count().__next__)
    counts_U = np.zeros(0, np.int64)
    store = _BlockStore(cache_dir)
    line_lengths, n_undecodable = [], 0
    try:
        for path in paths:
            n_before = store.n
            for words, lengths, n_bad in _read_file(path):
                ids = np.fromiter(map(index.__getitem__, words), np.int32, len(words))
                store.append(ids)
                if len(index) > len(counts_U):  # grow geometrically: O(words), not O(blocks * V)
                    counts_U = np.concatenate(
                        [counts_U, np.zeros(len(index) + len(counts_U), np.int64)]
                    )
                unique, counts = np.unique(ids, return_counts=True)
                counts_U[unique] += counts
                line_lengths.append(np.asarray(lengths, np.int64))
                n_undecodable += n_bad
            if store.n == n_before:
                raise ValueError(f"corpus file {path} holds no words - remove it or fill it")
        if n_undecodable:
            warnings.warn(
                f"{n_undecodable} invalid UTF-8 byte sequences in {', '.join(paths)} were replaced "
                "by U+FFFD (words containing them are kept) - re-encode the files as UTF-8 to avoid it",
                UnicodeWarning,
                stacklevel=3,
            )
        vocab = _vocab(list(index), counts_U[: len(index)], min_count, max_size)
        remap_U = np.full(len(index), -1, np.int32)
        remap_U[[index[w] for w in vocab.index_to_key]] = np.arange(len(vocab), dtype=np.int32)
        raw_starts = _sentence_starts(np.concatenate(line_lengths), max_sentence_length)
        ids_N, starts = store.encode(remap_U, int(vocab.counts.sum()), raw_starts)
    finally:
        store.close()
    return Corpus(vocab, ids_N, starts, int(raw_starts[-1]), n_undecodable)


def _read_file(path: str) -> Iterator[tuple[list[str], list[int], int]]:
    """Yields (words, word counts of the lines completed, n_undecodable) per block of the file."""
    rest, open_line, first = b"", 0, True
    with open_compressed(path) as f:
        while True:
            try:
                block = f.read(_BLOCK_BYTES)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
                raise ValueError(f"{path}: compressed data is corrupt or truncated ({e})") from e
            if first and block.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
                block = block[3:]
            first = False
            data = rest + block
            # Cut after the last ASCII whitespace: a word or a UTF-8 sequence is never split.
            cut = len(data) if not block else max(data.rfind(c) for c in _WHITESPACE) + 1
            text, n_bad = _decode(data[:cut])
            rest = data[cut:]
            lengths = [len(line.split()) for line in text.split("\n")]
            lengths[0] += open_line
            open_line = lengths.pop()
            if not block:
                yield text.split(), [*lengths, open_line], n_bad
                return
            yield text.split(), lengths, n_bad


def _decode(data: bytes) -> tuple[str, int]:
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        return text, text.count("\ufffd") - data.count("\ufffd".encode())


def _vocab(keys: list[str], counts_U: np.ndarray, min_count: int, max_size: int | None) -> Vocab:
    if not keys:
        raise ValueError("the corpus holds no words - give a non-empty text file")
    top = int(np.argmax(counts_U))
    if counts_U[top] < min_count:
        raise ValueError(
            f"no word occurs min_count={min_count} times (the most frequent, {keys[top]!r}, "
            f"occurs {counts_U[top]} times) - lower --min-count to {counts_U[top]} or less, "
            "or use a larger corpus"
        )
    return Vocab.from_counts(
        dict(zip(keys, counts_U.tolist(), strict=True)), "frequency", min_count, max_size
    )


def _sentence_starts(line_lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Raw word offsets (incl. the end) of sentences: non-empty lines cut into <= max_length pieces."""
    lengths = line_lengths[line_lengths > 0]
    n_pieces = (lengths + max_length - 1) // max_length
    pieces = np.full(int(n_pieces.sum()), max_length, np.int64)
    pieces[np.cumsum(n_pieces) - 1] = lengths - (n_pieces - 1) * max_length
    return np.concatenate([[0], np.cumsum(pieces)])


class _BlockStore:
    """Provisional IDs of each block: in memory, or appended to a file in `cache_dir`."""

    def __init__(self, cache_dir: str | None):
        self.dir, self.sizes, self.blocks, self.n = cache_dir, [], [], 0
        self.file, self.ids_path = None, ""
        if cache_dir is not None:
            fd, self.raw_path = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-raw-")
            self.file = os.fdopen(fd, "wb")

    def append(self, ids: np.ndarray) -> None:
        self.sizes.append(len(ids))
        self.n += len(ids)
        if self.file is None:
            self.blocks.append(ids)
        else:
            self.file.write(ids.tobytes())

    def encode(self, remap_U, n_kept, raw_starts) -> tuple[np.ndarray, np.ndarray]:
        """Final IDs (words outside the vocabulary dropped) and the sentence starts among them."""
        if self.file is None:
            ids_N, blocks = np.empty(n_kept, np.int32), self.blocks
        else:
            self.file.close()
            raw = np.memmap(self.raw_path, np.int32, "r", shape=(self.n,))
            blocks = np.split(raw, np.cumsum(self.sizes)[:-1])
            self.ids_path = os.path.join(self.dir, f".tmp-ids-{os.getpid()}.npy")
            ids_N = np.lib.format.open_memmap(self.ids_path, "w+", np.int32, (n_kept,))
        starts = np.empty_like(raw_starts)
        raw_pos, out = 0, 0
        for i in range(len(self.sizes)):
            ids = remap_U[blocks[i]]
            kept = ids >= 0
            if self.file is None:
                blocks[i] = None  # free the provisional IDs as we go
            lo, hi = np.searchsorted(raw_starts, [raw_pos, raw_pos + len(kept)])
            kept_before = np.concatenate([[0], np.cumsum(kept)])
            starts[lo:hi] = out + kept_before[raw_starts[lo:hi] - raw_pos]
            ids_N[out : out + int(kept_before[-1])] = ids[kept]
            raw_pos, out = raw_pos + len(kept), out + int(kept_before[-1])
        starts[-1] = out
        starts = starts[np.concatenate([[True], np.diff(starts) > 0])]  # drop emptied sentences
        if self.file is not None:
            ids_N.flush()
            del ids_N
            os.replace(self.ids_path, os.path.join(self.dir, "ids.npy"))
            ids_N = np.load(os.path.join(self.dir, "ids.npy"), mmap_mode="r")
        return ids_N, starts

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            for path in (self.raw_path, self.ids_path):
                if os.path.exists(path):
                    os.unlink(path)


# ---------------------------------------------------------------------------- cache files


def save_corpus(corpus: Corpus, directory: str | os.PathLike) -> None:
    """Writes `corpus` to `directory` (ids.npy, sentence_starts.npy, vocab.txt, corpus.json).

    Each file is written atomically; corpus.json goes last, so a directory without it is incomplete.

    Example:
      >>> save_corpus(corpus, "cache/")
      >>> load_corpus("cache/").n_raw_words == corpus.n_raw_words
      True
    """
    _invalidate(directory)
    _atomic(directory, "ids.npy", lambda f: np.save(f, np.asarray(corpus.ids_N, np.int32)))
    _write_meta(corpus, directory, None)


def load_corpus(directory: str | os.PathLike, mmap: bool = True) -> Corpus:
    """Reads a corpus written by `save_corpus` or `read_corpus(..., cache_dir=...)`.

    Args:
      directory: the folder.
      mmap: map ids.npy from disk (read-only) instead of loading it into memory.

    Example:
      >>> corpus = load_corpus("cache/")
    """
    directory = os.fspath(directory)
    meta_path = os.path.join(directory, "corpus.json")
    if not os.path.exists(meta_path):
        raise FileNotFoundError(
            f"{meta_path} does not exist - write the corpus with save_corpus or "
            "read_corpus(..., cache_dir=...) first"
        )
    with open(meta_path) as f:
        meta = json.load(f)
    return Corpus(
        Vocab.load(os.path.join(directory, "vocab.txt")),
        np.load(os.path.join(directory, "ids.npy"), mmap_mode="r" if mmap else None),
        np.load(os.path.join(directory, "sentence_starts.npy")),
        meta["n_raw_words"],
        meta["n_undecodable"],
    )


def _write_meta(corpus: Corpus, directory, source: dict | None) -> None:
    meta = {"n_raw_words": corpus.n_raw_words, "n_undecodable": corpus.n_undecodable}
    meta["source"] = source
    _atomic(directory, "sentence_starts.npy", lambda f: np.save(f, corpus.sentence_starts))
    corpus.vocab.save(os.path.join(directory, "vocab.txt"))
    _atomic(directory, "corpus.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))


def _invalidate(directory) -> None:
    """Creates `directory` or unmarks the corpus in it: corpus.json, written last, marks it whole."""
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(meta := os.path.join(directory, "corpus.json")):
        os.unlink(meta)


def _cache_source(directory) -> dict | None:
    if not all(os.path.exists(os.path.join(directory, n)) for n in _CACHE_FILES):
        return None
    with open(os.path.join(directory, "corpus.json")) as f:
        return json.load(f).get("source")


def _fingerprint(path: str) -> list:
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def _atomic(directory, name: str, write: Callable) -> None:
    with atomic_open(os.path.join(directory, name)) as f:
        write(f)


# ---------------------------------------------------------------------------- word2vec sampling


def keep_probabilities(counts_V: np.ndarray, sample: float) -> np.ndarray:
    """Probability that frequent-word subsampling keeps each word (word2vec.c / gensim).

    With t = sample * sum(counts), a word seen c times is kept with probability
    min(1, (sqrt(c / t) + 1) * t / c): gensim's `prepare_vocab` formula (its per-word `sample_int`
    is this times 2**32 - 1). sample=0 keeps every word; words with count 0 are always kept.

    Returns:
      float64 (V,).

    Example:
      >>> keep_probabilities(np.array([1000, 10]), 1e-2).round(3).tolist()
      [0.111, 1.0]
    """
    _check_sample(sample)
    counts_V = np.asarray(counts_V, np.float64)
    if sample == 0:
        return np.ones_like(counts_V)
    threshold = sample * counts_V.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep_V = (np.sqrt(counts_V / threshold) + 1) * (threshold / counts_V)
    return np.where(counts_V > 0, np.minimum(keep_V, 1.0), 1.0)


def noise_distribution(counts_V: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Negative-sampling distribution: counts ** power, normalised (word2vec's unigram ** 0.75).

    Returns:
      float32 (V,) summing to 1; words with count 0 get probability 0.

    Example:
      >>> noise_distribution(np.array([16, 1, 0]), power=0.5).tolist()
      [0.800000011920929, 0.20000000298023224, 0.0]
    """
    weights_V = np.asarray(counts_V, np.float64) ** power
    if not weights_V.sum() > 0:
        raise ValueError("all counts are 0 - negatives need a vocabulary with corpus counts")
    return (weights_V / weights_V.sum()).astype(np.float32)


# ---------------------------------------------------------------------------- batches


def skipgram_batches(
    corpus: Corpus,
    window: int,
    sample: float,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    epochs: int = 1,
    start_batch: int = 0,
    chunk_tokens: int = _CHUNK_TOKENS,
) -> Iterator[dict]:
    """Skip-gram (center, context) pairs of one epoch, shuffled within chunks of ~1M words.

    Args:
      corpus: from `read_corpus`.
      window: maximum distance between center and context; each center draws its own shrunk
        window `window - b`, b uniform in [0, window), after subsampling (gensim's reduced_windows).
      sample: subsampling threshold (`keep_probabilities`); 0 turns it off.
      batch_size: pairs per batch (B); the last batch is padded.
      seed, epoch: the stream is a pure function of (seed, epoch) and the arguments.
      epochs: total epochs of the run, for `progress`.
      start_batch: skip the first batches (resume): the result equals the full stream's tail.
      chunk_tokens: words per chunk (part of the stream's definition: keep it fixed across resumes).

    Returns:
      An iterator of dicts of numpy values: "center_B", "context_B" (int32 (B,)), "mask_B"
      (float32 (B,), 1 real, 0 padding), "progress" (float32 scalar: fraction of the whole run's raw
      words processed before this batch, for word2vec's linearly decaying learning rate) and "words"
      (int: raw words this batch accounts for; they sum to n_raw_words per epoch).

    Example:
      >>> batch = next(skipgram_batches(corpus, window=5, sample=1e-4, batch_size=4096, seed=0, epoch=0))
      >>> batch["center_B"].shape
      (4096,)
    """
    _check_batching(window, sample, batch_size, epoch, epochs, start_batch, chunk_tokens)
    lengths_S = np.diff(corpus.sentence_starts)
    most = sum(2 * int(np.maximum(lengths_S - o, 0).sum()) for o in range(1, window + 1))
    _check_fits(batch_size, most, f"(center, context) pairs at window={window}")
    keep_V = keep_probabilities(corpus.vocab.counts, sample)

    def make(ids, starts, rng):
        sub, sentence, reach = _subsample(ids, starts, keep_V, window, rng)
        center, context = [], []
        for o in range(1, window + 1):
            same = sentence[:-o] == sentence[o:]
            forward, backward = same & (reach[:-o] >= o), same & (reach[o:] >= o)
            center += [sub[:-o][forward], sub[o:][backward]]
            context += [sub[o:][forward], sub[:-o][backward]]
        return np.concatenate(center), np.concatenate(context)

    def to_batch(center_B, context_B):
        return {"center_B": center_B, "context_B": context_B}

    chunks = _sentence_chunks(corpus, chunk_tokens)
    return _batches(corpus, chunks, make, to_batch, batch_size, seed, epoch, epochs, start_batch)


def cbow_batches(
    corpus: Corpus,
    window: int,
    sample: float,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    epochs: int = 1,
    start_batch: int = 0,
    chunk_tokens: int = _CHUNK_TOKENS,
) -> Iterator[dict]:
    """CBOW examples of one epoch: each center word with the context words of its shrunk window.

    Arguments, sampling and resumption as in `skipgram_batches`; centers without any context word
    (one-word sentences) are skipped, as they teach gensim nothing either.

    Returns:
      An iterator of dicts: "context_BxC" (int32 (B, 2 * window), context word j at offset
      (-window..-1, 1..window)[j], 0 where absent), "context_mask_BxC" (float32, 1 where present:
      average the masked vectors for gensim's cbow_mean=1), "center_B" (int32), "mask_B",
      "progress", "words" as in `skipgram_batches`.

    Example:
      >>> batch = next(cbow_batches(corpus, window=5, sample=1e-4, batch_size=1024, seed=0, epoch=0))
      >>> batch["context_BxC"].shape
      (1024, 10)
    """
    _check_batching(window, sample, batch_size, epoch, epochs, start_batch, chunk_tokens)
    lengths_S = np.diff(corpus.sentence_starts)
    _check_fits(batch_size, int(lengths_S[lengths_S > 1].sum()), "centers with context words")
    keep_V = keep_probabilities(corpus.vocab.counts, sample)
    offsets_C = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)]).astype(np.int32)

    def make(ids, starts, rng):
        sub, sentence, reach = _subsample(ids, starts, keep_V, window, rng)
        at_MxC = np.arange(len(sub), dtype=np.int32)[:, None] + offsets_C[None, :]
        inside = (at_MxC >= 0) & (at_MxC < len(sub))
        at_MxC = np.clip(at_MxC, 0, max(len(sub) - 1, 0))
        valid = inside & (np.abs(offsets_C)[None, :] <= reach[:, None])
        valid &= sentence[at_MxC] == sentence[:, None]
        has = valid.any(axis=1)
        valid = valid[has]
        return np.where(valid, sub[at_MxC[has]], 0), valid.astype(np.float32), sub[has]

    def to_batch(context_BxC, context_mask_BxC, center_B):
        return {
            "context_BxC": context_BxC,
            "context_mask_BxC": context_mask_BxC,
            "center_B": center_B,
        }

    chunks = _sentence_chunks(corpus, chunk_tokens)
    return _batches(corpus, chunks, make, to_batch, batch_size, seed, epoch, epochs, start_batch)


def next_token_batches(
    corpus: Corpus,
    context_length: int,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    epochs: int = 1,
    start_batch: int = 0,
) -> Iterator[dict]:
    """Next-token windows of one epoch: the corpus cut into non-overlapping windows, shuffled.

    Window w covers ids_N[w*T : w*T + T + 1] (T = context_length), crossing sentence boundaries
    as a language model's stream does; the last T or fewer words are left out.

    Returns:
      An iterator of dicts: "inputs_BxT", "targets_BxT" (int32 (B, T); targets are the inputs
      shifted by one), "mask_B", "progress", "words" as in `skipgram_batches`.

    Example:
      >>> batch = next(next_token_batches(corpus, context_length=64, batch_size=32, seed=0, epoch=0))
      >>> batch["inputs_BxT"].shape
      (32, 64)
    """
    _check_batching(1, 0.0, batch_size, epoch, epochs, start_batch, 1)
    _check_positive(context_length=context_length)
    ids_N = corpus.ids_N
    n_windows = max((len(ids_N) - 1) // context_length, 0)
    _check_fits(batch_size, n_windows, f"windows of context_length={context_length} + 1 words")
    span_T1 = np.arange(context_length + 1)

    def make(ids, starts, rng):
        return (np.arange(n_windows, dtype=np.int64) * context_length,)

    def to_batch(window_start_B):
        words_BxT1 = np.asarray(ids_N[window_start_B[:, None] + span_T1[None, :]], np.int32)
        return {"inputs_BxT": words_BxT1[:, :-1], "targets_BxT": words_BxT1[:, 1:]}

    chunks = [(0, len(ids_N), None)]
    return _batches(corpus, chunks, make, to_batch, batch_size, seed, epoch, epochs, start_batch)


def estimate_num_batches(
    corpus: Corpus,
    batch_size: int,
    objective: str = "skipgram",
    *,
    window: int = 5,
    sample: float = 0.0,
    context_length: int = 64,
) -> int:
    """Expected number of batches in one epoch (for a progress bar's time left).

    An estimate for "skipgram" and "cbow": it uses the expected number of words each sentence keeps
    after subsampling (exact when sample=0 and the window is not shrunk); exact for "next-token".

    Example:
      >>> estimate_num_batches(corpus, 4096, "skipgram", window=5, sample=1e-4)  # corpus-en-11m
      5437
    """
    _check_positive(batch_size=batch_size, window=window, context_length=context_length)
    if objective == "next-token":
        return -(-max((len(corpus.ids_N) - 1) // context_length, 0) // batch_size)
    if objective not in ("skipgram", "cbow"):
        raise ValueError(f"objective must be 'skipgram', 'cbow' or 'next-token'; got {objective!r}")
    keep_V, starts_S = keep_probabilities(corpus.vocab.counts, sample), corpus.sentence_starts
    kept_S = []
    for t0, t1, s in _sentence_chunks(corpus, _CHUNK_TOKENS):
        kept_S.append(np.add.reduceat(keep_V[corpus.ids_N[t0:t1]], starts_S[s[0] : s[1]] - t0))
    kept_S = np.concatenate(kept_S)
    if objective == "cbow":
        examples = kept_S[kept_S >= 2].sum()
    else:
        reach = [(window - o + 1) / window for o in range(1, window + 1)]
        examples = sum(2 * r * np.maximum(kept_S - o, 0).sum() for o, r in enumerate(reach, 1))
    return int(np.ceil(examples / batch_size))


def _subsample(ids, starts, keep_V, window, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept words, their sentence numbers and shrunk window reaches (random draws in fixed order)."""
    sentence = np.repeat(np.arange(len(starts) - 1, dtype=np.int32), np.diff(starts))
    if not np.all(keep_V == 1.0):
        keep = rng.random(len(ids)) < keep_V[ids]
        ids, sentence = ids[keep], sentence[keep]
    reach = window - rng.integers(0, window, len(ids), dtype=np.int32)
    return np.asarray(ids, np.int32), sentence, reach


def _sentence_chunks(corpus: Corpus, chunk_tokens: int) -> list[tuple[int, int, tuple[int, int]]]:
    """(first word, end word, (first sentence, end sentence)) of chunks of ~chunk_tokens words."""
    starts_S = corpus.sentence_starts
    n_sentences = len(starts_S) - 1
    targets = np.arange(0, starts_S[-1], chunk_tokens)
    bounds = np.unique(np.append(np.searchsorted(starts_S[:-1], targets), n_sentences))
    return [
        (int(starts_S[a]), int(starts_S[b]), (int(a), int(b)))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _batches(corpus, chunks, make, to_batch, batch_size, seed, epoch, epochs, start_batch):
    """Cuts each chunk's shuffled examples into fixed-size batches; see `skipgram_batches`."""
    n_words = len(corpus.ids_N)
    raw_per_word = corpus.n_raw_words / n_words
    state = {"prev_end": 0.0}  # corpus position (in words) that the previous batch reached

    def finish(arrays, n_real, end):
        pad = batch_size - n_real  # zeros, after to_batch: padding rows hold no real words
        batch = to_batch(*arrays)
        if pad:
            batch = {k: np.pad(v, [(0, pad)] + [(0, 0)] * (v.ndim - 1)) for k, v in batch.items()}
        prev_end, state["prev_end"] = state["prev_end"], end
        return {
            **batch,
            "mask_B": (np.arange(batch_size) < n_real).astype(np.float32),
            "progress": np.float32((epoch + prev_end / n_words) / epochs),
            "words": round(end * raw_per_word) - round(prev_end * raw_per_word),
        }

    def generate():
        skip = start_batch * batch_size  # examples before the first batch to yield
        seen, buffer, held = 0, None, None  # examples generated; leftover (< B); last full batch
        for k, (t0, t1, sentences) in enumerate(chunks):
            rng = np.random.default_rng([seed, epoch, k])
            starts = None
            if sentences is not None:
                starts = corpus.sentence_starts[sentences[0] : sentences[1] + 1] - t0
            examples = make(np.asarray(corpus.ids_N[t0:t1]), starts, rng)
            n, first = len(examples[0]), seen

            def end_of(j, t0=t0, t1=t1, n=n, first=first):  # corpus position after example j
                return t0 + (t1 - t0) * (j - first + 1) / n

            if n == 0:
                continue
            seen += n
            if first < skip <= seen:
                state["prev_end"] = end_of(skip - 1)
            if seen <= skip:  # entirely before the first batch: no need to shuffle
                continue
            order = rng.permutation(n)[max(skip - first, 0) :]
            fresh = [a[order] for a in examples]
            buffer_start = seen - len(order) - (0 if buffer is None else len(buffer[0]))
            if buffer is not None:
                fresh = [np.concatenate([b, a]) for b, a in zip(buffer, fresh, strict=True)]
            n_full = len(fresh[0]) // batch_size
            for i in range(n_full):
                batch = [a[i * batch_size : (i + 1) * batch_size] for a in fresh]
                if held is not None:
                    yield finish(*held)
                held = (batch, batch_size, end_of(buffer_start + (i + 1) * batch_size - 1))
            buffer = [a[n_full * batch_size :] for a in fresh]
        if buffer is not None and len(buffer[0]):
            if held is not None:
                yield finish(*held)
            held = (buffer, len(buffer[0]), None)
        if held is not None:  # the last batch ends the epoch: it accounts for the rest of the words
            yield finish(held[0], held[1], float(n_words))

    return generate()


# ---------------------------------------------------------------------------- prefetching


def prefetch(batches: Iterable[dict], size: int = 2, sharding=None) -> Iterator[dict]:
    """Produces batches in a background thread, `size` ahead of the consumer.

    Args:
      batches: any iterable of dicts (e.g. `skipgram_batches(...)`).
      size: how many batches to keep ready.
      sharding: if given, array values with a batch axis are `jax.device_put` with it in the
        background thread (e.g. `NamedSharding(mesh, P("data"))`); scalars stay numpy.

    Returns:
      An iterator over the same batches in the same order. An exception in the producer is raised
      in the consumer; closing the iterator (or leaving a for loop) stops the producer.

    Example:
      >>> for batch in prefetch(skipgram_batches(corpus, 5, 1e-4, 4096, seed=0, epoch=0), size=4):
      ...     state, metrics = train_step(state, batch)
    """
    _check_positive(size=size)
    ready: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):  # full: look at `stop` again, then retry
                ready.put(item, timeout=0.05)
                return True
        return False

    def produce():
        iterator = iter(batches)
        try:
            for batch in iterator:
                if sharding is not None:
                    batch = {k: _put(v, sharding) for k, v in batch.items()}
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as e:  # handed to the consumer, which raises it
            put(("error", e))
        finally:
            if hasattr(iterator, "close"):
                iterator.close()

    def consume():
        thread = threading.Thread(target=produce, daemon=True, name="jaxembed-prefetch")
        thread.start()
        try:
            while True:
                kind, item = ready.get()
                if kind == "error":
                    raise item
                if kind == "end":
                    return
                yield item
        finally:
            stop.set()
            thread.join()

    return consume()


def _put(value, sharding):
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return jax.device_put(value, sharding)
    return value


# ---------------------------------------------------------------------------- checks


def _check_positive(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(
                f"{name} must be a positive integer; got {value!r} - pass {flag} 1 or more"
            )


def _check_sample(sample: float) -> None:
    if not 0 <= sample < 1:
        raise ValueError(
            f"sample must be in [0, 1); got {sample!r} - word2vec uses 1e-3 to 1e-5, 0 turns "
            "subsampling off (--sample)"
        )


def _check_batching(window, sample, batch_size, epoch, epochs, start_batch, chunk_tokens) -> None:
    _check_positive(window=window, batch_size=batch_size, epochs=epochs, chunk_tokens=chunk_tokens)
    _check_sample(sample)
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, epochs={epochs}); got {epoch!r}")
    if (
        isinstance(start_batch, bool)
        or not isinstance(start_batch, int | np.integer)
        or start_batch < 0
    ):
        raise ValueError(f"start_batch must be an integer >= 0; got {start_batch!r}")


def _check_fits(batch_size: int, most: int, what: str) -> None:
    if batch_size > most:
        raise ValueError(
            f"batch_size={batch_size} is larger than the corpus: it has only {most} {what} per "
            f"epoch - use --batch-size {max(most, 1)} or less, or a larger corpus"
        )
