"""Tests for read_corpus's tokenizers: whitespace, words (split_words) and GPT-2 BPE."""

import itertools

import numpy as np
import pytest

from jaxembed import corpus as corpus_lib
from jaxembed.checks import ParameterError
from jaxembed.corpus import load_corpus, read_corpus
from jaxembed.tokenize import (
    GPT2_ENDOFTEXT_ID,
    gpt2_key,
    gpt2_keys,
    gpt2_token_bytes,
    gpt2_tokenizer,
    split_words,
)

PROSE = (
    'Elizabeth said, "I think so." The King and the king\n'
    'She said: "Mr. Darcy\'s letter--it came." 1,000 naïve cafés\r\n'
    "\n"
    "  Then    they   spoke again, Elizabeth said.\n"
    "last line without newline: 👩\u200d👩\u200d👧 हिन्दी"
)


def write(path, text):
    path.write_bytes(text.encode())
    return str(path)


def lines_of(corpus):
    starts = corpus.sentence_starts
    return [corpus.ids_N[a:b].tolist() for a, b in itertools.pairwise(starts)]


def test_whitespace_is_the_default_and_str_split(tmp_path):
    path = write(tmp_path / "t.txt", PROSE)
    corpus = read_corpus(path, min_count=1)
    expected = [line.split() for line in PROSE.split("\n") if line.split()]
    assert [corpus.vocab.decode(ids) for ids in lines_of(corpus)] == expected
    lowered = read_corpus(path, min_count=1, lowercase=True)
    assert "the" in lowered.vocab and "The" not in lowered.vocab


@pytest.mark.parametrize("lowercase", [False, True])
def test_words_tokenizer_is_split_words_per_line(tmp_path, lowercase):
    path = write(tmp_path / "t.txt", PROSE)
    corpus = read_corpus(path, min_count=1, tokenizer="words", lowercase=lowercase)
    expected = []
    for line in PROSE.split("\n"):
        tokens = split_words(line.lower() if lowercase else line)
        if tokens:
            expected.append(tokens)
    assert [corpus.vocab.decode(ids) for ids in lines_of(corpus)] == expected
    assert "said," not in corpus.vocab and '"I' not in corpus.vocab
    assert ("the" in corpus.vocab and "The" not in corpus.vocab) == lowercase
    assert "👩\u200d👩\u200d👧" in corpus.vocab and "हिन्दी" in corpus.vocab


@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_gpt2_ids_are_exactly_tiktokens(tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(corpus_lib, "_BLOCK_BYTES", block_bytes)  # lines across many blocks
    path = write(tmp_path / "t.txt", PROSE)
    corpus = read_corpus(path, min_count=1, tokenizer="gpt2")
    enc = gpt2_tokenizer()
    expected = [enc.encode_ordinary(line.removesuffix("\r")) for line in PROSE.split("\n")]
    assert lines_of(corpus) == [ids for ids in expected if ids]
    assert corpus.vocab.index_to_key == gpt2_keys()  # row i is GPT-2 token i
    assert corpus.n_raw_words == sum(map(len, expected))


def test_gpt2_long_line_is_cut_at_a_space_without_changing_tokens(tmp_path, monkeypatch):
    # text8 is one 100 MB line: it is cut before a space, where no GPT-2 piece is split.
    monkeypatch.setattr(corpus_lib, "_BLOCK_BYTES", 16)
    monkeypatch.setattr(corpus_lib, "_LONG_LINE_BYTES", 40)
    text = "  ".join(["the quick brown fox's  jumps, over 1990's lazy dogs!!"] * 20)
    path = write(tmp_path / "t.txt", text)
    corpus = read_corpus(path, min_count=1, tokenizer="gpt2", max_sentence_length=10**6)
    assert corpus.ids_N.tolist() == gpt2_tokenizer().encode_ordinary(text)


def test_gpt2_counts_and_rare_tokens(tmp_path):
    path = write(tmp_path / "t.txt", "a king and a queen\na king\n")
    corpus = read_corpus(path, min_count=2, tokenizer="gpt2")
    keys = corpus.vocab.key_to_index
    enc = gpt2_tokenizer()
    assert corpus.vocab.counts[keys["Ġking"]] == 2 and corpus.vocab.counts[keys["a"]] == 2
    # rarer tokens keep their rows, with count 0 (never trained, never noise), and leave the IDs
    assert len(corpus.vocab) == 50_257
    assert corpus.vocab.counts[keys["Ġqueen"]] == 0 and corpus.vocab.counts[keys["Ġand"]] == 0
    assert corpus.ids_N.tolist() == enc.encode_ordinary("a king") * 2  # " a" (Ġa) is seen once
    top = read_corpus(path, min_count=1, max_size=2, tokenizer="gpt2")
    assert set(np.flatnonzero(top.vocab.counts)) == {keys["a"], keys["Ġking"]}


def test_gpt2_end_of_text_ends_every_document(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_lib, "_BLOCK_BYTES", 5)
    path = write(tmp_path / "t.txt", "first document here\n\nsecond one\nthird")
    corpus = read_corpus(path, min_count=1, tokenizer="gpt2", end_of_text=True)
    enc = gpt2_tokenizer()
    expected = [
        enc.encode_ordinary(t) + [GPT2_ENDOFTEXT_ID]
        for t in ("first document here", "second one", "third")
    ]
    assert lines_of(corpus) == expected


def test_gpt2_keys_round_trip_every_token():
    enc = gpt2_tokenizer()
    keys = gpt2_keys()
    assert len(keys) == len(set(keys)) == 50_257
    assert not any(c.isspace() for key in keys for c in key)  # one word in a text file
    for i, key in enumerate(keys[:-1]):
        assert gpt2_token_bytes(key) == enc.decode_single_token_bytes(i)
        assert gpt2_key(enc.decode_single_token_bytes(i)) == key
    assert keys[-1] == "<|endoftext|>"
    assert keys[5822] == "Ġking" and gpt2_token_bytes("ĊĊ") == b"\n\n"
    with pytest.raises(ValueError, match="not a GPT-2 token key"):
        gpt2_token_bytes("a b")


def test_conflicting_settings_name_the_fix(tmp_path):
    path = write(tmp_path / "t.txt", PROSE)
    with pytest.raises(ParameterError, match="GPT-2's vocabulary is cased.*drop lowercase"):
        read_corpus(path, tokenizer="gpt2", lowercase=True)
    with pytest.raises(ParameterError, match="end_of_text=True needs tokenizer='gpt2'"):
        read_corpus(path, end_of_text=True)
    with pytest.raises(ValueError, match="tokenizer"):
        read_corpus(path, tokenizer="bpe")


def test_a_cache_of_other_tokens_is_refused(tmp_path):
    path = write(tmp_path / "t.txt", PROSE * 3)
    cache = tmp_path / "cache"
    words = read_corpus(path, min_count=1, tokenizer="words", cache_dir=cache)
    with pytest.raises(ParameterError, match=r"tokenizer='words'.*asks tokenizer='gpt2'"):
        read_corpus(path, min_count=1, tokenizer="gpt2", cache_dir=cache)
    # the refused call left the cache whole
    assert load_corpus(cache).vocab == words.vocab
    gpt2 = read_corpus(path, min_count=1, tokenizer="gpt2", cache_dir=tmp_path / "cache-gpt2")
    again = read_corpus(path, min_count=1, tokenizer="gpt2", cache_dir=tmp_path / "cache-gpt2")
    np.testing.assert_array_equal(gpt2.ids_N, again.ids_N)
