"""Tests for jaxembed.corpus: reading corpora, cache files, bad input."""

import bz2
import collections
import gzip
import itertools
import lzma
import os

import gensim
import numpy as np
import pytest
from gensim.test.utils import datapath

from jaxembed import corpus as corpus_lib
from jaxembed.corpus import load_corpus, read_corpus, save_corpus

LEE = datapath("lee_background.cor")  # 300 lines, 59,890 words of news text, shipped with gensim
TEXT = "the cat sat on the mat\nthe dog sat\n\n  a cat and a dog  \r\nthe end"


def write(path, text, opener=open):
    with opener(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    return str(path)


def sentences(corpus):
    """The corpus as lists of words, one per sentence (brute force view)."""
    starts = corpus.sentence_starts
    return [corpus.vocab.decode(corpus.ids_N[a:b]) for a, b in itertools.pairwise(starts)]


def assert_corpora_equal(a, b):
    assert a.vocab == b.vocab
    np.testing.assert_array_equal(a.ids_N, b.ids_N)
    np.testing.assert_array_equal(a.sentence_starts, b.sentence_starts)
    assert (a.n_raw_words, a.n_undecodable) == (b.n_raw_words, b.n_undecodable)


# ---------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    "name, opener",
    [
        ("c.txt.xz", lzma.open),
        ("c.txt.gz", gzip.open),
        ("c.txt.bz2", bz2.open),
        ("c.gz.txt", gzip.open),
    ],
)
def test_compressed_files_read_like_plain(tmp_path, name, opener):
    plain = read_corpus(write(tmp_path / "c.txt", TEXT), min_count=1)
    assert_corpora_equal(read_corpus(write(tmp_path / name, TEXT, opener), min_count=1), plain)


def test_sentences_are_lines_without_rare_words(tmp_path):
    corpus = read_corpus(write(tmp_path / "c.txt", TEXT), min_count=2)
    assert sorted(corpus.vocab.index_to_key) == ["a", "cat", "dog", "sat", "the"]
    assert sentences(corpus) == [
        ["the", "cat", "sat", "the"],
        ["the", "dog", "sat"],
        ["a", "cat", "a", "dog"],
        ["the"],
    ]
    assert corpus.n_raw_words == len(TEXT.split())
    assert corpus.ids_N.dtype == np.int32 and corpus.sentence_starts.dtype == np.int64


@pytest.mark.parametrize("min_count, max_size", [(1, None), (5, None), (5, 100), (20, 7)])
def test_vocab_and_ids_match_counter_and_gensim_line_sentence(min_count, max_size):
    counts = collections.Counter(open(LEE, "rb").read().decode().split())
    corpus = read_corpus(LEE, min_count=min_count, max_size=max_size)
    kept = sorted(((-c, w) for w, c in counts.items() if c >= min_count))[:max_size]
    assert corpus.vocab.index_to_key == tuple(w for _, w in kept)
    assert corpus.vocab.counts.tolist() == [-c for c, _ in kept]
    lines = gensim.models.word2vec.LineSentence(LEE)
    expected = [[w for w in line if w in corpus.vocab] for line in lines]
    assert sentences(corpus) == [s for s in expected if s]
    assert corpus.n_raw_words == sum(counts.values())


def test_vocabulary_equals_gensims():
    model = gensim.models.Word2Vec(min_count=5)
    model.build_vocab(gensim.models.word2vec.LineSentence(LEE))
    corpus = read_corpus(LEE, min_count=5)
    gensim_counts = {w: model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key}
    assert (
        dict(zip(corpus.vocab.index_to_key, corpus.vocab.counts.tolist(), strict=True))
        == gensim_counts
    )


@pytest.mark.parametrize("block_bytes", [1, 5, 64, 1 << 20])
def test_block_boundaries_never_split_words_or_characters(tmp_path, monkeypatch, block_bytes):
    text = "café naïve 東京 x\n" * 7 + "ünïcödé  words\tand\x0btabs \n\n end"
    monkeypatch.setattr(corpus_lib, "_BLOCK_BYTES", block_bytes)
    corpus = read_corpus(write(tmp_path / "c.txt", text), min_count=1)
    assert sentences(corpus) == [line.split() for line in text.split("\n") if line.split()]
    assert corpus.n_undecodable == 0


@pytest.mark.parametrize("n_words, max_length", [(25_000, 10_000), (10_000, 10_000), (7, 3)])
def test_one_long_line_without_newline_is_cut_into_sentences(
    tmp_path, monkeypatch, n_words, max_length
):
    monkeypatch.setattr(corpus_lib, "_BLOCK_BYTES", 4096)  # many blocks, as text8's 100 MB line
    words = [f"w{i % 97}" for i in range(n_words)]
    corpus = read_corpus(
        write(tmp_path / "text8", " ".join(words)), min_count=1, max_sentence_length=max_length
    )
    expected = [words[i : i + max_length] for i in range(0, n_words, max_length)]
    assert sentences(corpus) == expected


def test_reading_holds_about_four_bytes_a_word(tmp_path, monkeypatch):
    """The provisional IDs grow in one array and the final IDs overwrite them in place, and the
    sentence offsets are made a block at a time: reading's live memory peaks at 1.6x the 4-byte
    ID array (it grows by a quarter at a time), where the provisional blocks, a second array of
    final IDs and the line lengths' temporaries made it 2.6x."""
    import tracemalloc

    monkeypatch.setattr(corpus_lib, "_BLOCK_BYTES", 1 << 16)
    rng = np.random.default_rng(0)
    n_words = 2_000_000
    words = np.array([f"w{i}" for i in range(500)])[rng.zipf(1.3, n_words) % 500]
    lines = [" ".join(words[i : i + 12]) for i in range(0, n_words, 12)]
    path = write(tmp_path / "c.txt", "\n".join(lines) + "\n\n")
    del words
    tracemalloc.start()
    try:
        corpus = read_corpus(path, min_count=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert corpus.ids_N.nbytes == 4 * n_words
    assert peak < 2.0 * corpus.ids_N.nbytes, peak / corpus.ids_N.nbytes
    assert sentences(corpus) == [line.split() for line in lines]


def test_sentence_pieces_are_cut_before_dropping_rare_words(tmp_path):
    # gensim cuts the raw line into pieces first, then drops unknown words within each piece.
    corpus = read_corpus(
        write(tmp_path / "c.txt", "a a rare a odd a"), min_count=2, max_sentence_length=3
    )
    assert sentences(corpus) == [["a", "a"], ["a", "a"]]


def test_several_files_end_their_lines_at_file_ends(tmp_path):
    paths = [write(tmp_path / "1.txt", "a b"), write(tmp_path / "2.txt.gz", "c d\n", gzip.open)]
    corpus = read_corpus(paths, min_count=1)
    assert sentences(corpus) == [["a", "b"], ["c", "d"]]


def test_byte_order_mark_is_not_part_of_a_word(tmp_path):
    corpus = read_corpus(write(tmp_path / "c.txt", b"\xef\xbb\xbfhello world"), min_count=1)
    assert sorted(corpus.vocab.index_to_key) == ["hello", "world"]


def test_undecodable_bytes_are_replaced_counted_and_reported(tmp_path):
    raw = (
        b"caf\xe9 ok ok \xff\xfe ok\n" + "\ufffd stays".encode()
    )  # the last U+FFFD is genuine text
    with pytest.warns(
        UnicodeWarning, match=r"3 invalid UTF-8 byte sequences .* replaced by U\+FFFD"
    ):
        corpus = read_corpus(write(tmp_path / "c.txt", raw), min_count=1)
    assert corpus.n_undecodable == 3
    assert sentences(corpus) == [
        ["caf\ufffd", "ok", "ok", "\ufffd\ufffd", "ok"],
        ["\ufffd", "stays"],
    ]


# ---------------------------------------------------------------------------- cache files


def test_cache_dir_writes_a_memmap_and_is_reused(tmp_path, monkeypatch):
    path = write(tmp_path / "c.txt", TEXT)
    in_memory = read_corpus(path, min_count=1)
    cached = read_corpus(path, min_count=1, cache_dir=tmp_path / "cache")
    assert isinstance(cached.ids_N, np.memmap)
    assert_corpora_equal(cached, in_memory)
    no_temporary_left = sorted(corpus_lib._CACHE_FILES)
    assert sorted(os.listdir(tmp_path / "cache")) == no_temporary_left

    def no_reading(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(corpus_lib, "_read", no_reading)
    assert_corpora_equal(read_corpus(path, min_count=1, cache_dir=tmp_path / "cache"), in_memory)
    with pytest.raises(AssertionError, match="cache"):  # other settings: read again
        read_corpus(path, min_count=2, cache_dir=tmp_path / "cache")


def test_save_and_load_round_trip(tmp_path):
    corpus = read_corpus(LEE, min_count=3)
    save_corpus(corpus, tmp_path / "saved")
    for mmap in (True, False):
        assert_corpora_equal(load_corpus(tmp_path / "saved", mmap=mmap), corpus)
    with pytest.raises(FileNotFoundError, match="save_corpus"):
        load_corpus(tmp_path / "nothing")


# ---------------------------------------------------------------------------- bad input


def test_missing_file_and_directory(tmp_path):
    good = write(tmp_path / "c.txt", TEXT)
    with pytest.raises(FileNotFoundError, match="nope.txt does not exist"):
        read_corpus([good, str(tmp_path / "nope.txt")])
    with pytest.raises(ValueError, match="is a directory"):
        read_corpus(tmp_path)
    with pytest.raises(ValueError, match="no corpus files"):
        read_corpus([])


@pytest.mark.parametrize("content", [b"", b"  \n\n\t \n", b"\xef\xbb\xbf"])
def test_file_without_words(tmp_path, content):
    empty = write(tmp_path / "empty.txt", content)
    with pytest.raises(ValueError, match="empty.txt holds no words"):
        read_corpus([write(tmp_path / "c.txt", TEXT), empty], min_count=1)


def test_no_word_survives_min_count(tmp_path):
    with pytest.raises(
        ValueError, match=r"the most frequent, 'the', occurs 4 times\) - lower min_count to 4"
    ):
        read_corpus(write(tmp_path / "c.txt", TEXT), min_count=5)


def test_failed_read_leaves_no_cache_behind(tmp_path):
    cache = tmp_path / "cache"
    read_corpus(write(tmp_path / "c.txt", TEXT), min_count=1, cache_dir=cache)
    with pytest.raises(ValueError, match="min_count"):
        read_corpus(tmp_path / "c.txt", min_count=99, cache_dir=cache)
    assert not any(name.startswith(".tmp") for name in os.listdir(cache))
    with pytest.raises(FileNotFoundError):  # the old cache is no longer marked complete
        load_corpus(cache)


def truncated(data):
    return data[: len(data) // 2]


def bit_flipped(data):
    return data[:20] + bytes([data[20] ^ 0xFF]) + data[21:]


@pytest.mark.parametrize("compress", [lzma.compress, gzip.compress, bz2.compress])
@pytest.mark.parametrize("damage", [truncated, bit_flipped])
def test_corrupt_compressed_file(tmp_path, compress, damage):
    words = np.random.default_rng(0).integers(0, 10**6, 20_000).astype(str)
    bad = damage(compress(" ".join(words).encode()))
    with pytest.raises(ValueError, match="c.txt: compressed data is corrupt or truncated"):
        read_corpus(write(tmp_path / "c.txt", bad), min_count=1)


def test_bad_min_count_names_the_fix():
    with pytest.raises(ValueError, match="min_count must be a positive integer; got 0$"):
        read_corpus(LEE, min_count=0)
