"""Training batches for learning tables: a `Corpus`'s int32 IDs -> word2vec or next-token batches.

The batch functions follow word2vec.c / gensim: frequent words are subsampled afresh each epoch,
then each kept word gets a shrunk window `window - b`, b uniform in [0, window); negatives come
from counts ** 0.75 (`noise_distribution`; the train step draws them on device). The stream is a
pure function of (seed, epoch): chunk k of ~1M words uses `np.random.default_rng([seed, epoch, k])`,
so `start_batch=k` reproduces the tail of the full stream (resume after a checkpoint). Reading text
files into a `Corpus` lives in `jaxembed.corpus`.

    >>> from jaxembed.corpus import read_corpus
    >>> from jaxembed.lecture import default_corpus
    >>> corpus = read_corpus([default_corpus()], min_count=5)
    >>> batches = prefetch(skipgram_batches(corpus, 5, 1e-4, 4096, seed=0, epoch=0))
    >>> sum(int(batch["mask_B"].sum()) for batch in batches) > 0  # (center, context) pairs
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import mmap
import queue
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from jaxembed.checks import ParameterError, non_negative_int, positive_int
from jaxembed.corpus import Corpus

__all__ = [
    "CHUNK_TOKENS",
    "keep_probabilities",
    "noise_distribution",
    "skipgram_batches",
    "cbow_batches",
    "cbow_slot_capacity",
    "cbow_slots",
    "next_token_batches",
    "prefetch",
    "release_free_memory",
    "shuffle_words",
]

CHUNK_TOKENS = 1 << 20  # corpus words per batch-generation chunk (one RNG stream each)
_CHUNK_BATCHES = 64  # shuffle_words: a chunk holds at least this many batch sizes of words ...
_MAX_CHUNK_TOKENS = 1 << 24  # ... up to 16M words (the memory of a chunk's examples)
_KEEP_BLOCK = 1 << 16  # words per block of subsampling draws


# ---------------------------------------------------------------------------- word2vec sampling


def shuffle_words(batch_size: int, least: int = CHUNK_TOKENS) -> int:
    """Words per shuffling chunk (`FitConfig.shuffle_words`'s default) for `batch_size` examples.

    Each batch is drawn from one chunk of the corpus, its examples shuffled within the chunk. At
    the CPU's batch sizes a 1M-word chunk makes ~500 batches; a 256k-pair batch would be an
    eighth of it, a slice of the same few documents, and a run's steps would lurch from one
    stretch of text to the next (on corpus-en-11m such a run diverged in its second epoch;
    BENCHMARKS.md, section 7). So a chunk holds `least` words (the host pipeline's 1M; the
    device pipeline's 4M), or 64 x batch_size words where that is more, up to 16M words.

    Example:
      >>> shuffle_words(4096), shuffle_words(262144), shuffle_words(1 << 20)
      (1048576, 16777216, 16777216)
    """
    positive_int("batch_size", batch_size)
    return max(least, min(_CHUNK_BATCHES * batch_size, _MAX_CHUNK_TOKENS))


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
    counts_V = np.asarray(counts_V, np.float64)
    weights_V = np.where(counts_V > 0, counts_V**power, 0.0)  # 0 ** 0 would be 1
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
    chunk_tokens: int = CHUNK_TOKENS,
) -> Iterator[dict]:
    """Skip-gram (center, context) pairs of one epoch, shuffled within chunks of `chunk_tokens` words.

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

    def pairs(lengths):  # of sentences of these lengths: at each offset, forward and backward
        return sum(2 * int(np.maximum(lengths - o, 0).sum()) for o in range(1, window + 1))

    _check_fits(
        batch_size, _over_sentences(corpus, pairs), f"(center, context) pairs at window={window}"
    )
    keep_V = keep_probabilities(corpus.vocab.counts, sample)

    def make(ids, starts, rng):
        sub, sentence, reach = _subsample(ids, starts, keep_V, window, rng)
        pieces = []  # (centers that reach o words forward / backward, their centers, contexts)
        for o in range(1, window + 1):
            same = sentence[:-o] == sentence[o:]
            pieces.append((same & (reach[:-o] >= o), sub[:-o], sub[o:]))
            pieces.append((same & (reach[o:] >= o), sub[o:], sub[:-o]))
        ends = np.cumsum([int(mask.sum()) for mask, _, _ in pieces])
        center, context = np.empty(ends[-1], np.int32), np.empty(ends[-1], np.int32)
        at = 0  # filled in place: no per-offset pieces to concatenate
        for (mask, here, there), end in zip(pieces, ends, strict=True):
            np.compress(mask, here, out=center[at:end])
            np.compress(mask, there, out=context[at:end])
            at = end
        return center, context

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
    chunk_tokens: int = CHUNK_TOKENS,
) -> Iterator[dict]:
    """CBOW examples of one epoch: each center word with the context words of its shrunk window.

    Arguments, sampling and resumption as in `skipgram_batches`; centers without any context word
    (one-word sentences) are skipped, as they teach gensim nothing either.

    A batch holds its context words flat (`cbow_slots`): only the real ones, each with the index
    of its center in the batch, about 55% of the 2 * window slots a padded (B, 2 * window) layout
    would gather and scatter.

    Returns:
      An iterator of dicts: "center_B" (int32 (B,)), "context_L" (int32 (L,): the context words,
      those of center 0 first, then center 1's, ...), "slot_center_L" (int32 (L,): the center
      each belongs to, 0..B-1), "slot_mask_L" (float32 (L,): 1 real, 0 padding), "mask_B",
      "progress", "words" as in `skipgram_batches`. L is `cbow_slot_capacity(batch_size,
      window)` (a batch with more real context words, very rare, gets L = 2 * window * B).

    Example:
      >>> batch = next(cbow_batches(corpus, window=5, sample=1e-4, batch_size=1024, seed=0, epoch=0))
      >>> batch["center_B"].shape, batch["context_L"].shape
      ((1024,), (6720,))
    """
    _check_batching(window, sample, batch_size, epoch, epochs, start_batch, chunk_tokens)
    centers = _over_sentences(corpus, lambda lengths: int(lengths[lengths > 1].sum()))
    _check_fits(batch_size, centers, "centers with context words")
    keep_V = keep_probabilities(corpus.vocab.counts, sample)
    offsets_C = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)]).astype(np.int32)
    capacity = cbow_slot_capacity(batch_size, window)
    # An example is (chunk number, position among the chunk's kept words): its context words are
    # gathered a batch at a time from the chunk's kept words (8 bytes an example held between
    # shuffling and batching, not 2 * window context IDs and their mask: 45 bytes at window 5).
    kept = {}  # chunk number -> (kept IDs, their sentence numbers, their reaches)
    numbers = itertools.count()

    def make(ids, starts, rng):
        sub, sentence, reach = _subsample(ids, starts, keep_V, window, rng)
        same = sentence[1:] == sentence[:-1]  # every reach is >= 1: a neighbour is in the window
        has = np.zeros(len(sub), bool)
        has[1:] |= same
        has[:-1] |= same
        k = next(numbers)
        kept[k] = sub, sentence, reach.astype(np.int8)
        position_M = np.flatnonzero(has).astype(np.int32)
        return np.full(len(position_M), k, np.int32), position_M

    def contexts(k, position_B):
        sub, sentence, reach = kept[k]
        at_BxC = position_B[:, None] + offsets_C[None, :]
        valid_BxC = (at_BxC >= 0) & (at_BxC < len(sub))
        at_BxC = np.clip(at_BxC, 0, len(sub) - 1)
        valid_BxC &= np.abs(offsets_C)[None, :] <= reach[position_B][:, None]
        valid_BxC &= sentence[at_BxC] == sentence[position_B][:, None]
        return np.where(valid_BxC, sub[at_BxC], 0), valid_BxC, sub[position_B]

    def to_batch(chunk_B, position_B):
        for k in [k for k in kept if k < chunk_B[0]]:  # batches come in order: done with these
            del kept[k]
        parts = [contexts(k, position_B[chunk_B == k]) for k in np.unique(chunk_B)]
        context_BxC, valid_BxC, center_B = (np.concatenate(p) for p in zip(*parts, strict=True))
        return {"center_B": center_B, **cbow_slots(context_BxC, valid_BxC, capacity)}

    chunks = _sentence_chunks(corpus, chunk_tokens)
    return _batches(corpus, chunks, make, to_batch, batch_size, seed, epoch, epochs, start_batch)


def cbow_slot_capacity(batch_size: int, window: int) -> int:
    """L, the context slots of a CBOW batch of `batch_size` centers: rarely too few, never more
    than the padded 2 * window * batch_size.

    A kept center's reach r is uniform in 1..window and it has at most 2r context words: mean
    window + 1, variance (window**2 - 1) / 3. L is that mean times B plus 6 standard deviations of
    the sum (and one more center's worth), rounded up to 64 (mesh data axes divide it).

    Example:
      >>> cbow_slot_capacity(512, 5), 2 * 5 * 512
      (3520, 5120)
    """
    spread = 6.0 * np.sqrt(batch_size * (window**2 - 1) / 3.0)
    capacity = -(-int(batch_size * (window + 1) + spread + 2 * window) // 64) * 64
    return min(capacity, -(-2 * window * batch_size // 64) * 64)


def cbow_slots(context_BxC: np.ndarray, mask_BxC: np.ndarray, capacity: int) -> dict:
    """A padded CBOW batch's context words as flat slots (`cbow_batches`' layout).

    Args:
      context_BxC: context word IDs of each center, any value where `mask_BxC` is 0.
      mask_BxC: nonzero where the slot holds a real context word.
      capacity: L, slots to pad to; a batch with more real words gets 2 * window * B, rounded up
        to 64.

    Returns:
      {"context_L", "slot_center_L", "slot_mask_L"}.

    Example:
      >>> slots = cbow_slots(np.array([[7, 8], [9, 0]]), np.array([[1, 1], [1, 0]]), 4)
      >>> slots["context_L"].tolist(), slots["slot_center_L"].tolist(), slots["slot_mask_L"].tolist()
      ([7, 8, 9, 0], [0, 0, 1, 1], [1.0, 1.0, 1.0, 0.0])
    """
    center_L, slot_L = np.nonzero(mask_BxC)
    n = len(center_L)
    if n > capacity:
        capacity = -(-mask_BxC.size // 64) * 64
    pad = capacity - n
    return {
        "context_L": np.pad(np.asarray(context_BxC)[center_L, slot_L].astype(np.int32), (0, pad)),
        # Padding slots repeat the last center: slot_center_L stays sorted (segment sums rely
        # on it); their mask is 0.
        "slot_center_L": np.pad(center_L.astype(np.int32), (0, pad), mode="edge"),
        "slot_mask_L": np.pad(np.ones(n, np.float32), (0, pad)),
    }


def next_token_batches(
    corpus: Corpus,
    context_length: int,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    epochs: int = 1,
    start_batch: int = 0,
    stride: int | None = None,
) -> Iterator[dict]:
    """Next-token windows of one epoch: the corpus cut into windows of T + 1 tokens, shuffled.

    Window w covers ids_N[w*S : w*S + T + 1] (T = context_length, S = stride, T by default: no
    overlap), crossing sentence boundaries as a language model's stream does. The windows are
    those of rasbt's `GPTDatasetV1` (starts 0, S, 2S, ... below N - T: every target fits).

    Returns:
      An iterator of dicts: "inputs_BxT", "targets_BxT" (int32 (B, T); targets are the inputs
      shifted by one), "mask_B", "progress", "words" as in `skipgram_batches`.

    Example:
      >>> batch = next(next_token_batches(corpus, context_length=64, batch_size=32, seed=0, epoch=0))
      >>> batch["inputs_BxT"].shape
      (32, 64)
    """
    _check_batching(1, 0.0, batch_size, epoch, epochs, start_batch, 1)
    positive_int("context_length", context_length)
    stride = context_length if stride is None else positive_int("stride", stride)
    ids_N = corpus.ids_N
    window_starts = np.arange(0, max(len(ids_N) - context_length, 0), stride, dtype=np.int64)
    _check_fits(
        batch_size,
        len(window_starts),
        f"windows of context_length={context_length} + 1 words, stride={stride}",
    )
    span_T1 = np.arange(context_length + 1)

    def make(ids, starts, rng):
        return (window_starts,)

    def to_batch(window_start_B):
        words_BxT1 = np.asarray(ids_N[window_start_B[:, None] + span_T1[None, :]], np.int32)
        return {"inputs_BxT": words_BxT1[:, :-1], "targets_BxT": words_BxT1[:, 1:]}

    chunks = [(0, len(ids_N), None)]
    return _batches(corpus, chunks, make, to_batch, batch_size, seed, epoch, epochs, start_batch)


def _subsample(ids, starts, keep_V, window, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept words, their sentence numbers and shrunk window reaches (random draws in fixed order)."""
    sentence = sentence_numbers(starts)
    if not np.all(keep_V == 1.0):
        # Drawn a block at a time (the same numbers as one rng.random(len(ids))): 1 byte a word
        # for the mask instead of two float64 temporaries, 16 bytes a word.
        keep = np.empty(len(ids), bool)
        for a in range(0, len(ids), _KEEP_BLOCK):
            block = ids[a : a + _KEEP_BLOCK]
            keep[a : a + len(block)] = rng.random(len(block)) < keep_V[block]
        ids, sentence = ids[keep], sentence[keep]
    reach = window - rng.integers(0, window, len(ids), dtype=np.int32)
    return np.asarray(ids, np.int32), sentence, reach


def _over_sentences(corpus: Corpus, count) -> int:
    """The sum of `count(lengths)` over blocks of the corpus's sentence lengths: temporaries of
    a block, not of the corpus (a 108M-word corpus has 87 MB of int64 offsets)."""
    starts_S = corpus.sentence_starts
    block = 1 << 20
    return sum(
        count(np.diff(starts_S[a : a + block + 1])) for a in range(0, len(starts_S) - 1, block)
    )


def sentence_numbers(starts: np.ndarray) -> np.ndarray:
    """int32 sentence number of each word, from sentence offsets (S+1,) that rise from 0."""
    return np.repeat(np.arange(len(starts) - 1, dtype=np.int32), np.diff(starts))


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
        if pad:  # flat arrays ("_L", padded by to_batch) have no example axis
            batch = {
                k: v if k.endswith("_L") else np.pad(v, [(0, pad)] + [(0, 0)] * (v.ndim - 1))
                for k, v in batch.items()
            }
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
            ids = corpus.ids_N[t0:t1]
            examples = make(np.asarray(ids), starts, rng)
            _drop_pages(ids)  # memory-mapped IDs: the resident set stays one chunk, not the corpus
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
            order = np.arange(n, dtype=np.int32)  # rng.permutation(n)'s order and draws,
            rng.shuffle(order)  # in 4 bytes an example instead of 8
            order = order[max(skip - first, 0) :]
            fresh = []  # one array at a time, each dropped once shuffled
            examples = list(examples)
            while examples:
                fresh.append(examples.pop(0)[order])
            lead = 0 if buffer is None else len(buffer[0])  # the previous chunks' leftover
            buffer_start = seen - len(order) - lead
            del examples, order
            release_free_memory()  # the chunk's temporaries: tens of MB, in this thread's arena

            def rows(lo, hi, lead=lead, buffer=buffer, fresh=fresh):  # of [buffer; fresh]
                if lo >= lead:
                    return [a[lo - lead : hi - lead] for a in fresh]
                return [
                    np.concatenate([b[lo:], a[: hi - lead]])
                    for b, a in zip(buffer, fresh, strict=True)
                ]

            total = lead + len(fresh[0])
            n_full = total // batch_size
            for i in range(n_full):
                batch = rows(i * batch_size, (i + 1) * batch_size)
                if held is not None:
                    yield finish(*held)
                held = (batch, batch_size, end_of(buffer_start + (i + 1) * batch_size - 1))
            # A copy: a view would keep this chunk's examples alive while the next is made.
            buffer = [np.array(a) for a in rows(n_full * batch_size, total)]
            del fresh, rows
        if buffer is not None and len(buffer[0]):
            if held is not None:
                yield finish(*held)
            held = (buffer, len(buffer[0]), None)
        if held is not None:  # the last batch ends the epoch: it accounts for the rest of the words
            yield finish(held[0], held[1], float(n_words))

    return generate()


# ---------------------------------------------------------------------------- prefetching


def prefetch(batches: Iterable[dict], size: int = 2) -> Iterator[dict]:
    """Produces batches in a background thread, `size` ahead of the consumer.

    Args:
      batches: any iterable of dicts (e.g. `skipgram_batches(...)`).
      size: how many batches to keep ready.

    Returns:
      An iterator over the same batches in the same order. An exception in the producer is raised
      in the consumer; closing the iterator (or leaving a for loop) stops the producer.

    Example:
      >>> for batch in prefetch(skipgram_batches(corpus, 5, 1e-4, 4096, seed=0, epoch=0), size=4):
      ...     pass  # e.g. state, metrics = step(state, batch)
      >>> batch["words"] > 0  # raw corpus words of the epoch's last batch
      True
    """
    positive_int("size", size)
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


@functools.cache
def _libc_function(name: str):
    """A C library function (glibc's malloc_trim, madvise), or None where there is none."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):  # macOS (no malloc_trim), musl, Windows: nothing to call
        return None


def _drop_pages(ids: np.ndarray) -> None:
    """Takes the whole pages of a read-only memory-mapped array out of the process's resident
    set (madvise MADV_DONTNEED): they stay in the page cache and are read again if touched.

    Anything but a read-only np.memmap (`load_corpus`'s IDs) is left alone: on memory of the
    process's own, or a copy-on-write map, the advice would discard the contents.
    """
    if not isinstance(ids, np.memmap) or ids.mode != "r" or not hasattr(mmap, "MADV_DONTNEED"):
        return
    madvise = _libc_function("madvise")
    start, end = ids.ctypes.data, ids.ctypes.data + ids.nbytes
    first, last = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE, end // mmap.PAGESIZE * mmap.PAGESIZE
    if madvise is not None and last > first:
        madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED)


def release_free_memory() -> None:
    """Hands the C heap's free pages back to the OS (glibc's `malloc_trim`; elsewhere nothing).

    glibc keeps freed memory for reuse, and memory freed by one thread (reading the corpus,
    compiling, making a chunk's examples) is not reused by the step's threads, which allocate from
    arenas of their own: it would stay in the process's resident size for the whole run. A few
    milliseconds a call (it walks the heap: ~4 ms over 2.5 GB).
    """
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


# ---------------------------------------------------------------------------- checks


def _check_sample(sample: float) -> None:
    if not 0 <= sample < 1:
        raise ParameterError(
            f"sample must be in [0, 1); got {sample!r} - word2vec uses 1e-3 to 1e-5, 0 turns "
            "subsampling off",
            "sample",
        )


def _check_batching(window, sample, batch_size, epoch, epochs, start_batch, chunk_tokens) -> None:
    for name, value in (
        ("window", window),
        ("batch_size", batch_size),
        ("epochs", epochs),
        ("chunk_tokens", chunk_tokens),
    ):
        positive_int(name, value)
    _check_sample(sample)
    if not 0 <= epoch < epochs:
        raise ParameterError(f"epoch must be in [0, epochs={epochs}); got {epoch!r}", "epoch")
    non_negative_int("start_batch", start_batch)


def _check_fits(batch_size: int, most: int, what: str) -> None:
    if batch_size > most:
        raise ParameterError(
            f"batch_size={batch_size} is larger than the corpus: it has only {most} {what} per "
            f"epoch - use batch_size={max(most, 1)} or less, or a larger corpus",
            "batch_size",
        )
