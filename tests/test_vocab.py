"""Tests for jaxembed.vocab: ordering, encode/decode, bad inputs, save/load."""

import collections
import dataclasses
import os
import pickle
import tempfile

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxembed.vocab import ENDOFTEXT, UNK, Vocab, check_ids

LECTURE = "quick fox is in the house".split()
SPECIALS = (UNK, ENDOFTEXT)


def test_lecture_alphabetical_ids():
    vocab = Vocab.build(LECTURE)
    # The lecture's IDs: fox 0, house 1, in 2, is 3, quick 4, the 5.
    assert vocab.index_to_key == ("fox", "house", "in", "is", "quick", "the")
    assert vocab.key_to_index == {"fox": 0, "house": 1, "in": 2, "is": 3, "quick": 4, "the": 5}
    assert vocab.encode(["in", "is", "the", "house"]).tolist() == [2, 3, 5, 1]
    assert vocab.counts.tolist() == [1] * 6
    assert len(vocab) == 6 and vocab.specials == () and vocab.unk_id is None


def _reference_frequency_order(tokens, min_count=1, max_size=None, specials=()):
    """The rule restated independently: count, filter, sort by (-count, token), truncate."""
    counts = collections.Counter(t for t in tokens if t not in specials)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[: max_size - len(specials)]
    return tuple(specials) + tuple(kept)


CORPUS = "the cat sat on the mat the cat ran b a a b c".split()


@pytest.mark.parametrize(
    "order, min_count, max_size, specials, expected",
    [
        # Ties (a, b: 2 each; c, mat, on, ran, sat: 1 each) broken by token.
        ("frequency", 1, None, (), ("the", "a", "b", "cat", "c", "mat", "on", "ran", "sat")),
        ("frequency", 2, None, (), ("the", "a", "b", "cat")),
        ("frequency", 1, 3, (), ("the", "a", "b")),
        ("frequency", 1, 4, SPECIALS, SPECIALS + ("the", "a")),
        ("frequency", 3, None, SPECIALS, SPECIALS + ("the",)),
        ("frequency", 1, 2, SPECIALS, SPECIALS),
        # Alphabetical keeps the most frequent when truncating, then sorts them.
        ("alphabetical", 1, 3, (), ("a", "b", "the")),
        ("alphabetical", 2, None, (UNK,), (UNK, "a", "b", "cat", "the")),
        ("alphabetical", 1, None, (), tuple(sorted(set(CORPUS)))),
    ],
)
def test_build_order_min_count_max_size(order, min_count, max_size, specials, expected):
    vocab = Vocab.build(
        CORPUS, order=order, min_count=min_count, max_size=max_size, specials=specials
    )
    assert vocab.index_to_key == expected
    assert vocab.specials == specials
    counts = collections.Counter(CORPUS)
    assert vocab.counts.tolist() == [counts[t] for t in expected]
    if order == "frequency":
        assert expected == _reference_frequency_order(CORPUS, min_count, max_size, specials)


@given(
    st.lists(st.sampled_from("abcdefgh"), max_size=40),
    st.integers(1, 4),
    st.none() | st.integers(2, 10),
)
def test_frequency_order_matches_reference(tokens, min_count, max_size):
    specials = (UNK,)
    vocab = Vocab.build(
        tokens, order="frequency", min_count=min_count, max_size=max_size, specials=specials
    )
    assert vocab.index_to_key == _reference_frequency_order(tokens, min_count, max_size, specials)
    assert max_size is None or len(vocab) <= max_size


def test_from_counts_equals_build_and_special_keeps_its_count():
    tokens = ["x", ENDOFTEXT, "y", "x", ENDOFTEXT, "x"]
    built = Vocab.build(tokens, order="frequency", specials=SPECIALS)
    assert built == Vocab.from_counts(collections.Counter(tokens), specials=SPECIALS)
    assert built.index_to_key == (UNK, ENDOFTEXT, "x", "y")
    assert built.counts.tolist() == [0, 2, 3, 1]


def test_unknown_tokens_map_to_unk_or_raise_naming_the_token():
    with_unk = Vocab.build(LECTURE, specials=(UNK,))
    assert with_unk.unk_id == 0
    assert with_unk.encode(["fox", "zebra", "the"]).tolist() == [1, 0, 6]
    assert with_unk["zebra"] == 0 and "zebra" not in with_unk
    without = Vocab.build(LECTURE)
    with pytest.raises(KeyError, match=r"'zebra' \(position 1\).*<\|unk\|>"):
        without.encode(["fox", "zebra"])
    with pytest.raises(KeyError, match="zebra"):
        without["zebra"]


@pytest.mark.parametrize(
    "ids",
    [
        [2, 3, 5, 1],
        np.array([2, 3, 5, 1], np.int32),
        np.array([2, 3, 5, 1], np.uint8),
        np.array([2, 3, 5, 1], np.int64),
        jnp.array([2, 3, 5, 1]),
        (2, 3, 5, 1),
    ],
)
def test_decode_accepts_list_numpy_jax(ids):
    assert Vocab.build(LECTURE).decode(ids) == ["in", "is", "the", "house"]


@pytest.mark.parametrize(
    "ids, error, pattern",
    [
        (
            [1, 6],
            ValueError,
            r"ids must be in \[0, 6\); got 6 at position 1 - the vocabulary has 6",
        ),
        ([0, 1, -1], ValueError, r"got -1 at position 2"),
        (jnp.array([0, 100]), ValueError, r"got 100 at position 1"),
        ([[0, 1], [2, 9]], ValueError, r"got 9 at position \(1, 1\)"),
        ([1.0, 2.0], TypeError, r"must be integers; got dtype float64 - cast"),
        (jnp.array([1.0]), TypeError, r"float32 - cast"),
        ([True], TypeError, r"must be integers"),
        ([[0, 1], [2, 3]], ValueError, r"1-D IDs; got shape \(2, 2\)"),
    ],
)
def test_decode_refuses_bad_ids(ids, error, pattern):
    with pytest.raises(error, match=pattern):
        Vocab.build(LECTURE).decode(ids)


def test_check_ids_returns_int64_of_same_shape():
    ids = check_ids(np.array([[5, 0], [1, 2]], np.int32), 6)
    assert ids.dtype == np.int64 and ids.tolist() == [[5, 0], [1, 2]]


def test_empty_inputs():
    vocab = Vocab.build(LECTURE)
    encoded = vocab.encode([])
    assert encoded.dtype == np.int32 and encoded.shape == (0,)
    assert vocab.decode([]) == [] and vocab.decode(np.zeros(0, np.int32)) == []
    with pytest.raises(ValueError, match="no token has count >= min_count=1"):
        Vocab.build([])
    with pytest.raises(ValueError, match=r"'a', has count 1.*lower min_count"):
        Vocab.build(["a"], min_count=2)
    assert Vocab.build([], specials=(UNK,)).index_to_key == (UNK,)
    with pytest.raises(ValueError, match="at least one token"):
        Vocab.from_keys([])


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: Vocab.build("a text"), TypeError, "not a str"),
        (lambda: Vocab.build(LECTURE).encode("fox"), TypeError, "split it first"),
        (lambda: Vocab.build(LECTURE, order="random"), ValueError, "order must be one of"),
        (lambda: Vocab.build(LECTURE, min_count=-1), ValueError, "min_count"),
        (lambda: Vocab.build(LECTURE, max_size=0), ValueError, "max_size"),
        (lambda: Vocab.build(LECTURE, max_size=1, specials=SPECIALS), ValueError, "room for"),
        (lambda: Vocab.build(LECTURE, specials=(UNK, UNK)), ValueError, "unique"),
        (lambda: Vocab.build([1, 2]), TypeError, "str tokens"),
        (lambda: Vocab.from_counts({"a": -1}), ValueError, "count of 'a'"),
        (lambda: Vocab.from_counts({"a": 1.5}), ValueError, "count of 'a'"),
        (lambda: Vocab.from_keys(["a", "b", "a"]), ValueError, r"'a' is at positions 0 and 2"),
        (lambda: Vocab.from_keys(["a", "b"], [1]), ValueError, r"shape \(2,\)"),
        (lambda: Vocab.from_keys(["a"], [-3]), ValueError, ">= 0"),
        (lambda: Vocab.from_keys(["a"], [0.5]), TypeError, "integers"),
        (lambda: Vocab(("a", UNK), np.zeros(2, np.int64), (UNK,)), ValueError, "first tokens"),
    ],
)
def test_bad_construction(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_from_keys_keeps_order_and_counts():
    vocab = Vocab.from_keys(["the", "cat", UNK], counts=[7, 3, 0])
    assert vocab.key_to_index == {"the": 0, "cat": 1, UNK: 2}
    assert vocab.counts.dtype == np.int64 and vocab.counts.tolist() == [7, 3, 0]
    assert vocab.encode(["dog"]).tolist() == [2]
    assert Vocab.from_keys(["a", "b"]).counts.tolist() == [0, 0]


def test_vocab_is_immutable_and_does_not_alias_input():
    counts = np.array([4, 5], np.int64)
    vocab = Vocab.from_keys(["a", "b"], counts)
    counts[0] = 99
    assert vocab.counts.tolist() == [4, 5]
    with pytest.raises(ValueError, match="read-only"):
        vocab.counts[0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        vocab.index_to_key = ("c", "d")
    assert list(vocab) == ["a", "b"] and "a" in vocab
    assert vocab == Vocab.from_keys(["a", "b"], [4, 5])
    assert hash(vocab) == hash(Vocab.from_keys(["a", "b"], [4, 5]))
    assert vocab != Vocab.from_keys(["a", "b"], [4, 6])


def test_pickle_copy_is_equal_and_read_only():
    vocab = Vocab.build(CORPUS, specials=(UNK,))
    copy = pickle.loads(pickle.dumps(vocab))
    assert copy == vocab and copy.specials == (UNK,) and not copy.counts.flags.writeable
    assert copy.encode(["zebra", "cat"]).tolist() == vocab.encode(["zebra", "cat"]).tolist()


token_lists = st.lists(st.text(), min_size=1, max_size=20)


@given(token_lists, st.data())
def test_encode_decode_round_trip(tokens, data):
    vocab = Vocab.build(tokens, order=data.draw(st.sampled_from(["alphabetical", "frequency"])))
    assert vocab.decode(vocab.encode(tokens)) == tokens
    assert vocab.encode(vocab.index_to_key).tolist() == list(range(len(vocab)))


file_tokens = st.text(st.characters(exclude_characters="\t\n\r", exclude_categories=["Cs"]))


@settings(max_examples=50)
@given(st.lists(file_tokens, min_size=1, max_size=20), st.sampled_from([(), SPECIALS]))
def test_save_load_round_trip(tokens, specials):
    vocab = Vocab.build(tokens, order="frequency", specials=specials)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vocab.tsv")
        vocab.save(path)
        loaded = Vocab.load(path)
        assert os.listdir(tmp) == ["vocab.tsv"]  # no temporary file left behind
    assert loaded == vocab
    assert loaded.index_to_key == vocab.index_to_key and loaded.specials == vocab.specials
    assert loaded.counts.tolist() == vocab.counts.tolist()


def test_save_writes_one_token_a_line_with_counts(tmp_path):
    vocab = Vocab.build(["b", "a b", "b", "é"], order="frequency", specials=(UNK,))
    vocab.save(tmp_path / "v.tsv")
    lines = (tmp_path / "v.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[1:] == [f"{UNK}\t0", "b\t2", "a b\t1", "é\t1", ""]
    assert Vocab.load(tmp_path / "v.tsv") == vocab


@pytest.mark.parametrize("bad", ["a\tb", "a\nb", "a\rb"])
def test_save_refuses_tokens_with_line_or_field_separators(tmp_path, bad):
    with pytest.raises(ValueError, match=r"\(ID 1\) contains"):
        Vocab.from_keys(["ok", bad]).save(tmp_path / "v.tsv")
    assert not os.listdir(tmp_path)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "v.tsv"
    old = Vocab.build(LECTURE)
    old.save(path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        Vocab.build(CORPUS).save(path)
    monkeypatch.undo()
    assert Vocab.load(path) == old
    assert os.listdir(tmp_path) == ["v.tsv"]


def test_every_truncation_is_refused(tmp_path):
    path = tmp_path / "v.tsv"
    Vocab.build(LECTURE, specials=(UNK,)).save(path)
    data = path.read_bytes()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|line 1"):
            Vocab.load(path)


@pytest.mark.parametrize(
    "body, pattern",
    [
        ("#jaxembed-vocab v1 size=2 specials=0\na\t1\na\t2\n", "line 3: duplicate token 'a'"),
        ("#jaxembed-vocab v1 size=2 specials=0\na\t1\nb\tx\n", "line 3: expected 'token<TAB>"),
        ("#jaxembed-vocab v1 size=2 specials=0\na\t1\nb\t-1\n", "line 3: expected"),
        ("#jaxembed-vocab v1 size=2 specials=0\na\t1\nb 2\n", "line 3: expected"),
        ("#jaxembed-vocab v1 size=1 specials=0\na\t1\nb\t2\n", "line 3: extra content"),
        ("#jaxembed-vocab v1 size=2 specials=0\na\t1\n", "truncated"),
        ("#jaxembed-vocab v1 size=1 specials=2\na\t1\n", "line 1: expected the header"),
        ("#jaxembed-vocab v9 size=1 specials=0\na\t1\n", "line 1"),
        ("a\t1\nb\t2\n", "line 1: expected the header"),
    ],
)
def test_load_refuses_malformed_files(tmp_path, body, pattern):
    path = tmp_path / "v.tsv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=pattern):
        Vocab.load(path)


def test_load_errors_for_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        Vocab.load(tmp_path / "missing.tsv")
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        Vocab.load(tmp_path / "bin")
