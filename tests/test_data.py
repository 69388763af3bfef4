"""Tests for jaxembed.data: word2vec sampling, batches, prefetching, bad input."""

import collections
import itertools
import os
import threading
import tracemalloc

import gensim
import numpy as np
import pytest
from test_corpus import LEE, TEXT, write  # the reading tests' corpus files

from jaxembed import data
from jaxembed.corpus import Corpus, read_corpus
from jaxembed.data import (
    cbow_batches,
    cbow_slot_capacity,
    cbow_slots,
    keep_probabilities,
    next_token_batches,
    noise_distribution,
    prefetch,
    release_free_memory,
    skipgram_batches,
)
from jaxembed.positions import sliding_windows
from jaxembed.vocab import Vocab


def make_corpus(sentence_words, vocab_size):
    """A Corpus from lists of word IDs, with made-up counts (the ID order stays as given)."""
    keys = tuple(f"w{i}" for i in range(vocab_size))
    ids = np.concatenate([np.asarray(s, np.int32) for s in sentence_words])
    counts = np.bincount(ids, minlength=vocab_size) + 1
    starts = np.concatenate([[0], np.cumsum([len(s) for s in sentence_words])])
    return Corpus(Vocab.from_keys(keys, counts), ids, starts, len(ids))


def random_corpus(n_sentences=40, vocab_size=32, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, n_sentences)
    # Zipf-like draws, so that subsampling has frequent words to drop.
    probs = 1.0 / np.arange(1, vocab_size + 1)
    return make_corpus(
        [rng.choice(vocab_size, n, p=probs / probs.sum()) for n in lengths], vocab_size
    )


# ---------------------------------------------------------------------------- word2vec sampling


@pytest.mark.parametrize("sample", [1e-3, 1e-4, 1e-5])
def test_keep_probabilities_equal_gensims_sample_int(sample):
    model = gensim.models.Word2Vec(min_count=5, sample=sample)
    model.build_vocab(gensim.models.word2vec.LineSentence(LEE))
    corpus = read_corpus(LEE, min_count=5)
    keep_V = keep_probabilities(corpus.vocab.counts, sample)
    ours = {w: np.uint32(p * (2**32 - 1)) for w, p in zip(corpus.vocab, keep_V, strict=True)}
    assert ours == {w: model.wv.get_vecattr(w, "sample_int") for w in model.wv.index_to_key}
    assert keep_V.min() < 1.0  # the comparison covered subsampled words


def test_keep_probabilities_without_sampling_keep_everything():
    np.testing.assert_array_equal(keep_probabilities(np.array([10**6, 3, 0]), 0.0), [1.0, 1.0, 1.0])


def test_noise_distribution_is_counts_to_the_power_normalised():
    counts = np.array([16, 1, 0, 81])
    expected = np.array([8.0, 1.0, 0.0, 27.0]) / 36.0  # 16**.75, 1, 0, 81**.75
    np.testing.assert_allclose(noise_distribution(counts), expected, rtol=1e-6)
    assert noise_distribution(counts).dtype == np.float32


def test_noise_distribution_matches_gensims_cum_table():
    model = gensim.models.Word2Vec(min_count=5)
    model.build_vocab(gensim.models.word2vec.LineSentence(LEE))
    counts = [model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key]
    gensim_probs = np.diff(model.cum_table, prepend=0) / (2**31 - 1)
    np.testing.assert_allclose(noise_distribution(counts), gensim_probs, atol=2e-9)


# ---------------------------------------------------------------------------- batches


def real_rows(batches, key):
    return np.concatenate([b[key][b["mask_B"] == 1] for b in batches])


def word2vec_draws(corpus, window, sample, seed, epoch):
    """Per sentence: the words subsampling keeps and their window reaches, drawn as the
    generator draws them for chunk 0 (all of a tiny corpus): keep, then reach = window - b."""
    rng = np.random.default_rng([seed, epoch, 0])
    keep_V = keep_probabilities(corpus.vocab.counts, sample)
    kept = [np.asarray(corpus.ids_N[a:b]) for a, b in itertools.pairwise(corpus.sentence_starts)]
    if sample:
        masks = np.split(
            rng.random(len(corpus.ids_N)) < keep_V[corpus.ids_N], corpus.sentence_starts[1:-1]
        )
        kept = [s[m] for s, m in zip(kept, masks, strict=True)]
    reach = window - rng.integers(0, window, sum(map(len, kept)), dtype=np.int32)
    return zip(kept, np.split(reach, np.cumsum([len(s) for s in kept])[:-1]), strict=True)


def word2vec_windows(corpus, window, sample, seed, epoch):
    """word2vec's loop, one center at a time: yields (center, its context words)."""
    for words, reaches in word2vec_draws(corpus, window, sample, seed, epoch):
        for i, r in enumerate(reaches):
            context = [
                int(words[j]) for j in range(max(i - r, 0), min(i + r + 1, len(words))) if j != i
            ]
            yield int(words[i]), context


@pytest.mark.parametrize("window", [1, 2, 5])
@pytest.mark.parametrize("sample", [0.0, 1e-2])
def test_skipgram_pairs_equal_word2vec_loop(window, sample):
    corpus = random_corpus()
    expected = collections.Counter(
        (center, c)
        for center, context in word2vec_windows(corpus, window, sample, 3, 1)
        for c in context
    )
    batches = list(skipgram_batches(corpus, window, sample, 16, seed=3, epoch=1, epochs=2))
    pairs = zip(
        real_rows(batches, "center_B").tolist(),
        real_rows(batches, "context_B").tolist(),
        strict=True,
    )
    assert collections.Counter(pairs) == expected


@pytest.mark.parametrize("window", [1, 3])
@pytest.mark.parametrize("sample", [0.0, 1e-2])
def test_cbow_examples_equal_word2vec_loop(window, sample):
    corpus = random_corpus(seed=1)
    expected = collections.Counter(
        (center, tuple(sorted(context)))
        for center, context in word2vec_windows(corpus, window, sample, 0, 0)
        if context  # a center without context words teaches nothing: no example
    )
    batches = list(cbow_batches(corpus, window, sample, 8, seed=0, epoch=0))
    got = collections.Counter()
    for batch in batches:
        slots = batch["slot_mask_L"] == 1
        contexts = collections.defaultdict(list)
        for i, word in zip(batch["slot_center_L"][slots], batch["context_L"][slots], strict=True):
            contexts[int(i)].append(int(word))
        real = np.flatnonzero(batch["mask_B"] == 1)
        assert sorted(contexts) == real.tolist()  # every real centre has context words
        for i in real:
            got[(int(batch["center_B"][i]), tuple(sorted(contexts[i])))] += 1
        assert np.all(np.diff(batch["slot_center_L"]) >= 0)  # sorted, padding included
    assert got == expected
    assert batches[0]["context_L"].shape == (cbow_slot_capacity(8, window),)


@pytest.mark.parametrize("chunk_tokens", [23, 100])
def test_cbow_examples_hold_the_skipgram_pairs_of_the_same_draws_across_chunks(chunk_tokens):
    # Both objectives draw each chunk's subsampling and reaches alike: a CBOW example's (center,
    # context word) pairs are skip-gram's, also where a batch spans chunks (8 > some chunks).
    corpus = random_corpus(n_sentences=60, seed=2)
    common = dict(seed=4, epoch=1, epochs=2, chunk_tokens=chunk_tokens)
    skipgram = list(skipgram_batches(corpus, 3, 1e-2, 8, **common))
    centers, contexts = real_rows(skipgram, "center_B"), real_rows(skipgram, "context_B")
    expected = collections.Counter(zip(centers.tolist(), contexts.tolist(), strict=True))
    got = collections.Counter()
    for batch in cbow_batches(corpus, 3, 1e-2, 8, **common):
        slots = batch["slot_mask_L"] == 1
        centers = batch["center_B"][batch["slot_center_L"][slots]]
        got.update(zip(centers.tolist(), batch["context_L"][slots].tolist(), strict=True))
    assert got == expected and sum(got.values()) > 100


def test_cbow_batches_hold_a_few_bytes_an_example_between_shuffling_and_batching():
    # 4 chunks of 2**18 words, all kept: the examples of a chunk wait as (chunk, position), 8
    # bytes each, and a chunk's words are dropped once its last batch is made (48 bytes a word
    # of a chunk at the peak). Held as context IDs and masks (2 * window int32 + bool, 45 bytes
    # at window 5), made from (words, 2 * window) temporaries, they took 263.
    rng = np.random.default_rng(0)
    n = 1 << 20
    corpus = make_corpus(np.array_split(rng.integers(0, 1000, n), n // 20), 1000)
    tracemalloc.start()
    try:
        for _ in cbow_batches(corpus, 5, 0.0, 4096, seed=0, epoch=0, chunk_tokens=n // 4):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * (n // 4), f"{peak / (n // 4):.1f} bytes a word of a chunk"


def test_cbow_slots_hold_the_real_context_words_in_order_and_overflow_to_the_padded_size():
    context = np.array([[3, 4, 0, 5], [0, 0, 6, 0], [7, 8, 9, 1]], np.int32)
    mask = np.array([[1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]])
    slots = cbow_slots(context, mask, capacity=10)
    assert slots["context_L"].tolist() == [3, 4, 5, 6, 7, 8, 9, 1, 0, 0]
    assert slots["slot_center_L"].tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2, 2]
    assert slots["slot_mask_L"].tolist() == [1.0] * 8 + [0.0] * 2
    wider = cbow_slots(context, mask, capacity=4)  # 8 real words: the padded size, 64
    assert wider["context_L"].shape == (64,) and wider["slot_mask_L"].sum() == 8


@pytest.mark.parametrize("make", [skipgram_batches, cbow_batches])
def test_windows_never_cross_sentences(make):
    # Sentence s uses only the words 4s..4s+3: any example mixing two groups crossed a boundary.
    rng = np.random.default_rng(0)
    corpus = make_corpus([rng.integers(4 * s, 4 * s + 4, 12) for s in range(8)], 32)
    for batch in make(corpus, 5, 0.0, 64, seed=0, epoch=0, chunk_tokens=20):
        real = batch["mask_B"] == 1
        group = batch["center_B"][real] // 4
        if "context_B" in batch:
            assert np.array_equal(batch["context_B"][real] // 4, group)
        else:
            slots = batch["slot_mask_L"] == 1
            slot_group = batch["center_B"][batch["slot_center_L"][slots]] // 4
            assert np.array_equal(batch["context_L"][slots] // 4, slot_group)


BATCHES = {
    "skipgram": lambda c, seed, epoch, **kw: skipgram_batches(
        c, 3, 1e-2, 8, seed, epoch, chunk_tokens=64, **kw
    ),
    "cbow": lambda c, seed, epoch, **kw: cbow_batches(
        c, 3, 1e-2, 8, seed, epoch, chunk_tokens=64, **kw
    ),
    "next-token": lambda c, seed, epoch, **kw: next_token_batches(c, 4, 8, seed, epoch, **kw),
}


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.parametrize("objective", BATCHES)
def test_same_seed_same_batches_other_seed_or_epoch_others(objective):
    corpus, make = random_corpus(), BATCHES[objective]
    first = list(make(corpus, 0, 0, epochs=2))
    assert_batches_equal(list(make(corpus, 0, 0, epochs=2)), first)
    for seed, epoch in [(1, 0), (0, 1)]:
        other = list(make(corpus, seed, epoch, epochs=2))
        key = next(iter(first[0]))
        assert not np.array_equal(real_rows(other, key), real_rows(first, key))


@pytest.mark.parametrize("n", [1, 2, 1000, 123457])
def test_the_int32_shuffle_is_numpys_permutation(n):
    """The host stream shuffles a chunk with rng.shuffle of int32 indices: the same order, and
    the same generator state after, as rng.permutation (which the stream used before), so runs
    made with either resume into the same batches."""
    a, b = np.random.default_rng([3, 1, 4]), np.random.default_rng([3, 1, 4])
    order = np.arange(n, dtype=np.int32)
    b.shuffle(order)
    np.testing.assert_array_equal(order, a.permutation(n))
    assert a.random() == b.random()


@pytest.mark.parametrize("objective", BATCHES)
def test_start_batch_gives_the_tail_of_the_full_stream(objective):
    corpus, make = random_corpus(n_sentences=60), BATCHES[objective]
    full = list(make(corpus, 5, 1, epochs=3))
    assert len(full) > 10
    for start in [0, 1, 7, len(full) - 1, len(full), len(full) + 3]:
        assert_batches_equal(list(make(corpus, 5, 1, epochs=3, start_batch=start)), full[start:])


@pytest.mark.parametrize("objective", BATCHES)
def test_shapes_masks_padding_progress_and_words(objective):
    corpus, make = random_corpus(), BATCHES[objective]
    epoch, epochs = 1, 4
    batches = list(make(corpus, 0, epoch, epochs=epochs))
    for batch in batches:
        for key, value in batch.items():
            if key.endswith(("_B", "_L", "_BxT")):
                assert value.shape[0] == (cbow_slot_capacity(8, 3) if key.endswith("_L") else 8)
                assert value.dtype == (np.float32 if "mask" in key else np.int32), key
    masks = np.stack([b["mask_B"] for b in batches])
    n_real = int(masks.sum())
    only_the_tail_pads = [1.0] * n_real + [0.0] * (masks.size - n_real)
    assert masks.reshape(-1).tolist() == only_the_tail_pads
    last = batches[-1]
    for key, value in last.items():
        if key.endswith(("_B", "_BxT")) and key != "mask_B":
            assert not np.any(value[last["mask_B"] == 0]), key
        if key.endswith("_L") and key != "slot_center_L":
            assert not np.any(value[last["slot_mask_L"] == 0]), key
    progress = [float(b["progress"]) for b in batches]
    assert progress[0] == epoch / epochs and progress[-1] < (epoch + 1) / epochs
    assert progress == sorted(progress)
    assert sum(b["words"] for b in batches) == corpus.n_raw_words


def test_progress_and_words_count_raw_words(tmp_path):
    text = (TEXT + "\n") * 30  # "on", "mat", "and", "end": 30 times each, below min_count
    corpus = read_corpus(write(tmp_path / "c.txt", text), min_count=31)
    batches = list(skipgram_batches(corpus, 2, 0.0, 4, 0, epoch=0, epochs=1))
    assert corpus.n_raw_words > len(corpus.ids_N)
    assert sum(b["words"] for b in batches) == corpus.n_raw_words


@pytest.mark.parametrize("stride", [None, 5, 2, 7])  # GPTDatasetV1's stride; None: T
def test_next_token_windows_equal_sliding_windows(stride):
    corpus = random_corpus()
    inputs_BxT, targets_BxT = sliding_windows(corpus.ids_N, max_length=5, stride=stride or 5)
    batches = list(next_token_batches(corpus, 5, 4, seed=0, epoch=0, stride=stride))
    got = {
        (tuple(i), tuple(t))
        for i, t in zip(
            real_rows(batches, "inputs_BxT").tolist(),
            real_rows(batches, "targets_BxT").tolist(),
            strict=True,
        )
    }
    assert len(real_rows(batches, "inputs_BxT")) == len(inputs_BxT)
    assert got == {
        (tuple(i), tuple(t)) for i, t in zip(inputs_BxT.tolist(), targets_BxT.tolist(), strict=True)
    }


# ---------------------------------------------------------------------------- prefetching


def test_prefetch_keeps_order_and_values():
    corpus = random_corpus()
    direct = list(skipgram_batches(corpus, 2, 0.0, 8, 0, 0))
    assert_batches_equal(list(prefetch(skipgram_batches(corpus, 2, 0.0, 8, 0, 0), size=3)), direct)


def test_prefetch_raises_producer_errors_and_stops_when_closed():
    def failing():
        yield {"x": np.zeros(1)}
        raise RuntimeError("broken corpus")

    with pytest.raises(RuntimeError, match="broken corpus"):
        list(prefetch(failing()))
    before = threading.active_count()
    endless = prefetch({"x": np.zeros(1)} for _ in itertools.count())
    next(endless)
    endless.close()
    assert threading.active_count() == before


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda c: skipgram_batches(c, 0, 0.0, 8, 0, 0),
            "window must be a positive integer; got 0$",
        ),
        (lambda c: cbow_batches(c, -2, 0.0, 8, 0, 0), "window must be a positive integer; got -2"),
        (
            lambda c: skipgram_batches(c, 2, 0.0, 0, 0, 0),
            "batch_size must be a positive integer; got 0$",
        ),
        (lambda c: skipgram_batches(c, 2, 1.5, 8, 0, 0), r"sample must be in \[0, 1\)"),
        (
            lambda c: skipgram_batches(c, 2, 0.0, 8, 0, 3, epochs=3),
            r"epoch must be in \[0, epochs=3\)",
        ),
        (lambda c: skipgram_batches(c, 2, 0.0, 8, 0, 0, start_batch=-1), "start_batch must be"),
        (lambda c: next_token_batches(c, 0, 8, 0, 0), "context_length must be a positive integer"),
        (
            lambda c: skipgram_batches(c, 1, 0.0, 9, 0, 0),
            "batch_size=9 is larger than the corpus: it has only 8 .* pairs .* use batch_size=8 ",
        ),
        (
            lambda c: cbow_batches(c, 1, 0.0, 7, 0, 0),
            "batch_size=7 is larger than the corpus: it has only 6 centers",
        ),
        (
            lambda c: next_token_batches(c, 2, 4, 0, 0),
            "batch_size=4 is larger than the corpus: it has only 3 windows",
        ),
    ],
)
def test_bad_arguments_name_the_fix(call, message):
    # At window 1: 4 + 4 pairs, 6 centers with a context; 3 next-token windows of 2 + 1 words.
    corpus = make_corpus([[0, 1, 2], [3, 4, 5], [6]], 7)
    with pytest.raises(ValueError, match=message):
        call(corpus)


def _resident_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


@pytest.mark.skipif(
    data._libc_function("malloc_trim") is None or not os.path.exists("/proc/self/status"),
    reason="glibc's malloc_trim and /proc: Linux only",
)
def test_release_free_memory_returns_a_freed_fragmented_heap_to_the_os():
    # 64 KiB blocks sit below glibc's mmap threshold: they come from the heap, and every other one
    # freed leaves holes that free() alone does not give back.
    blocks = [np.ones(8192) for _ in range(4096)]  # 256 MiB
    del blocks[::2]
    before = _resident_mib()
    release_free_memory()
    assert before - _resident_mib() > 64  # of the 128 MiB freed
    del blocks


@pytest.mark.skipif(
    data._libc_function("madvise") is None or not os.path.exists("/proc/self/status"),
    reason="madvise and /proc: Linux only",
)
def test_dropping_pages_of_memory_mapped_ids_shrinks_the_resident_set_and_keeps_the_values(
    tmp_path,
):
    ids = np.arange(16 << 20, dtype=np.int32)  # 64 MiB
    np.save(tmp_path / "ids.npy", ids)
    mapped = np.load(tmp_path / "ids.npy", mmap_mode="r")
    assert int(mapped[::1024].sum()) == int(ids[::1024].sum())  # every page touched: resident
    before = _resident_mib("RssFile")
    data._drop_pages(mapped[: 8 << 20])  # the first half
    assert before - _resident_mib("RssFile") > 24
    np.testing.assert_array_equal(mapped, ids)  # read again from the page cache
    own = ids.copy()
    data._drop_pages(own)  # not a map of a file: left alone (the advice would zero it)
    np.testing.assert_array_equal(own, ids)
    copy_on_write = np.load(tmp_path / "ids.npy", mmap_mode="c")
    copy_on_write[:1024] = -1
    data._drop_pages(copy_on_write)  # private pages: dropping them would lose the writes
    assert (copy_on_write[:1024] == -1).all()
