"""Corpora for learning tables: text files -> frequency vocabulary + int32 IDs, and cache files.

`read_corpus` streams plain, .xz, .gz or .bz2 files (found by their magic bytes) in 1 MiB blocks, so
a 100 MB single line (text8) never becomes one Python string or a list of the corpus. One pass both
counts the words and stores them as provisional int32 IDs; the frequency vocabulary then maps them
to final IDs, dropping words below `min_count` as gensim does. How text becomes tokens is the
`tokenizer`'s choice (`TOKENIZERS`):

- "whitespace": words are what `str.split` gives (gensim's `LineSentence`): punctuation stays
  attached ("said," and "said" are two words) and case is kept. The default.
- "words": `jaxembed.tokenize.split_words` per line, so raw prose becomes words and punctuation
  tokens; `lowercase=True` folds case ("The" and "the" become one word).
- "gpt2": GPT-2's byte-pair encoding (tiktoken, offline). The vocabulary is GPT-2's own, all
  50,257 tokens in GPT-2's ID order (keys in encoder.json's form, "Ġking"), so corpus ID i is
  GPT-2 token i and a learned table's row i belongs to token i. Counts come from the corpus; a
  token seen fewer than `min_count` times (or outside the `max_size` most frequent) keeps its row
  but gets count 0: it is dropped from the IDs, so it is never trained and never drawn as noise
  (vocab.txt shows its count as 0; `min_count=1` keeps every token seen). `end_of_text=True` ends
  each line (a document) with "<|endoftext|>", for next-token training.

Sentences are lines, cut into pieces
of at most 10,000 words (gensim's MAX_WORDS_IN_BATCH, as `LineSentence` and `Text8Corpus` do);
word2vec windows never cross them. Invalid UTF-8 is replaced by U+FFFD, counted and warned about.

A corpus is kept as files in a folder by `save_corpus`, or by `read_corpus` with `cache_dir`, which
writes the IDs straight to disk and loads them on later calls instead of reading the text again;
`load_corpus` reads them back. The files: ids.npy (memory-mapped when loaded), sentence_starts.npy,
vocab.txt, and corpus.json, written last: a folder without it is incomplete. `jaxembed.data` turns
a `Corpus` into training batches.

    >>> from jaxembed.lecture import default_corpus  # gensim's Lee news corpus, 60k words
    >>> corpus = read_corpus([default_corpus()], min_count=5, cache_dir="lee-cache/")
    >>> corpus.vocab.decode(corpus.ids_N[:3])
    ['Hundreds', 'of', 'people']
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import lzma
import os
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from jaxembed.checks import ParameterError, one_of, optional_positive_int, positive_int
from jaxembed.files import atomic_open, open_compressed
from jaxembed.vocab import Vocab

MAX_SENTENCE_LENGTH = 10_000  # gensim's MAX_WORDS_IN_BATCH: longer lines are cut into pieces
_BLOCK_BYTES = 1 << 20  # bytes read at a time
_WHITESPACE = b" \n\t\r\x0b\x0c"
_CACHE_FILES = ("ids.npy", "sentence_starts.npy", "vocab.txt", "corpus.json")
_LONG_LINE_BYTES = 8 << 20  # gpt2: a line longer than this is cut at a space (text8 is one line)
TOKENIZERS = ("whitespace", "words", "gpt2")
# Corpora that ship with the dependencies, by name (a file of that name in the working folder wins).
NAMED_CORPORA = {
    "lee": "gensim's Lee background corpus: 300 news stories (2001), one per line, 60k words",
}
_TOKEN_SETTINGS = ("tokenizer", "lowercase", "end_of_text")  # a cache read otherwise is refused


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """A tokenized corpus: vocabulary, the words as IDs, and sentence boundaries."""

    vocab: Vocab  # frequency-ordered vocabulary of the words kept (no specials)
    ids_N: np.ndarray  # int32 (N,): the corpus as IDs, words outside the vocabulary dropped
    sentence_starts: np.ndarray  # int64 (S+1,): sentence s is ids_N[starts[s] : starts[s + 1]]
    n_raw_words: int  # words read, before dropping rare ones (gensim's "raw words", for progress)
    n_undecodable: int = 0  # invalid UTF-8 sequences replaced by U+FFFD while reading
    digest: str = ""  # blake2b of the files' (decompressed) bytes, in order: tells corpora apart


# ---------------------------------------------------------------------------- reading


def corpus_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The files to read: one path or a list, with the names of `NAMED_CORPORA` resolved.

    Example:
      >>> corpus_paths("lee")[0].endswith("lee_background.cor")
      True
    """
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
    return [_named(p) if p in NAMED_CORPORA and not os.path.exists(p) else p for p in paths]


def _named(name: str) -> str:
    from gensim.test.utils import datapath

    return {"lee": datapath("lee_background.cor")}[name]


def read_corpus(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    min_count: int = 5,
    max_size: int | None = None,
    *,
    tokenizer: str = "whitespace",
    lowercase: bool = False,
    end_of_text: bool = False,
    cache_dir: str | os.PathLike | None = None,
    max_sentence_length: int = MAX_SENTENCE_LENGTH,
    progress: bool = False,
) -> Corpus:
    """Reads text files into a `Corpus` (one streaming pass; memory: 8 bytes per word).

    Args:
      paths: one file or a list, read in order; plain, .xz, .gz or .bz2 (detected by magic bytes);
        or a name of `NAMED_CORPORA` ("lee").
        Each line is a sentence (or a document).
      min_count: drop words seen fewer times (gensim's min_count); "gpt2" keeps their rows.
      max_size: keep at most this many of the most frequent words.
      tokenizer: "whitespace", "words" or "gpt2" (see the module docstring).
      lowercase: fold case first ("words" and "whitespace"; GPT-2's tokens are cased).
      end_of_text: "gpt2" only: end every non-empty line with "<|endoftext|>" (ID 50256).
      cache_dir: if given, the IDs are written there (np.memmap, for corpora bigger than memory) and
        a later call with the same files and settings loads them instead of reading the text again.
      max_sentence_length: lines longer than this are cut into several sentences.
      progress: show a tqdm bar of the bytes read (of the files as stored, compressed or not).

    Returns:
      The Corpus. Undecodable bytes are replaced by U+FFFD and reported with a UnicodeWarning.

    Example:
      >>> from jaxembed.lecture import default_corpus
      >>> corpus = read_corpus(default_corpus(), min_count=5)
      >>> len(corpus.vocab), corpus.n_raw_words  # corpus-en-11m: (61286, 10818076)
      (1762, 59890)
    """
    paths = corpus_paths(paths)
    positive_int("min_count", min_count)
    positive_int("max_sentence_length", max_sentence_length)
    optional_positive_int("max_size", max_size)  # checked before the text is read
    one_of("tokenizer", tokenizer, TOKENIZERS)
    if tokenizer == "gpt2" and lowercase:
        raise ParameterError(
            "lowercase=True with tokenizer='gpt2': GPT-2's vocabulary is cased (\"ĠThe\" and "
            "\"Ġthe\" are two tokens) - drop lowercase, or use tokenizer='words'",
            "lowercase",
            "tokenizer",
        )
    if end_of_text and tokenizer != "gpt2":
        raise ParameterError(
            f"end_of_text=True needs tokenizer='gpt2' (got tokenizer={tokenizer!r}): "
            "\"<|endoftext|>\" is GPT-2's token - pass tokenizer='gpt2' or drop end_of_text",
            "end_of_text",
            "tokenizer",
        )
    if not paths:
        raise ValueError("no corpus files given - pass at least one text file")
    for path in paths:
        if os.path.isdir(path):
            raise ValueError(f"{path} is a directory - pass the text files inside it")
        if not os.path.exists(path):
            names = ", ".join(NAMED_CORPORA)
            raise FileNotFoundError(
                f"corpus file {path} does not exist - check the path (or use a corpus shipped "
                f"with the dependencies by name: {names})"
            )
    settings = {
        "min_count": min_count,
        "max_size": max_size,
        "max_sentence_length": max_sentence_length,
        "tokenizer": tokenizer,
        "lowercase": lowercase,
        "end_of_text": end_of_text,
    }
    source = {"files": [_fingerprint(p) for p in paths], **settings}
    cached = None if cache_dir is None else _cache_source(cache_dir)
    if cached == source:
        return load_corpus(cache_dir)
    if cached is not None and cached.get("files") == source["files"]:
        _refuse_other_tokens(cache_dir, cached, settings)
    tokens = _Tokens(tokenizer, lowercase, end_of_text)
    if cache_dir is None:
        return _read(paths, min_count, max_size, max_sentence_length, None, progress, tokens)
    _invalidate(cache_dir)
    corpus = _read(
        paths, min_count, max_size, max_sentence_length, os.fspath(cache_dir), progress, tokens
    )
    _write_meta(corpus, cache_dir, source)
    return load_corpus(cache_dir)


def _refuse_other_tokens(cache_dir, cached: dict, settings: dict) -> None:
    """A cache of the same files read into other tokens is not silently replaced."""
    other = {k: cached.get(k, False if k != "tokenizer" else "whitespace") for k in _TOKEN_SETTINGS}
    if all(other[k] == settings[k] for k in _TOKEN_SETTINGS):
        return
    was = ", ".join(f"{k}={other[k]!r}" for k in _TOKEN_SETTINGS if other[k] != settings[k])
    now = ", ".join(f"{k}={settings[k]!r}" for k in _TOKEN_SETTINGS if other[k] != settings[k])
    raise ParameterError(
        f"cache_dir {os.fspath(cache_dir)} holds these files read with {was}; this call asks "
        f"{now} - pass another cache_dir (one per tokenizer), or delete that folder",
        "cache_dir",
        *[k for k in _TOKEN_SETTINGS if other[k] != settings[k]],
    )


class _Tokens:
    """Turns decoded blocks of text into tokens, per line: the tokenizer of `read_corpus`."""

    def __init__(self, tokenizer: str, lowercase: bool, end_of_text: bool):
        self.name, self.lowercase, self.end_of_text = tokenizer, lowercase, end_of_text
        self.encoding, self.pool = None, None
        self.threads = max(1, len(os.sched_getaffinity(0)))
        if tokenizer == "gpt2":
            from concurrent.futures import ThreadPoolExecutor

            from jaxembed.tokenize import gpt2_tokenizer

            self.encoding = gpt2_tokenizer()
            if self.threads > 1:  # tiktoken encodes without the GIL
                self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="jaxembed-bpe")
        self.open_tokens = 0  # gpt2: tokens of the line still open at the end of the last block

    def _encode(self, lines: list[str]) -> list[list[int]]:
        # One task per thread, each a loop over contiguous lines: tiktoken's encode_ordinary_batch
        # makes a task of every text, which on short lines costs more than the encoding (5x
        # slower than this on the Austen novels' lines, benchmarks/tokenization.py).
        encode = self.encoding.encode_ordinary
        if self.pool is None or len(lines) < 2 * self.threads:
            return [encode(line) for line in lines]
        size = -(-len(lines) // self.threads)
        parts = [lines[i : i + size] for i in range(0, len(lines), size)]
        done = self.pool.map(lambda part: [encode(line) for line in part], parts)
        return list(itertools.chain.from_iterable(done))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def fixed_vocab(self) -> tuple[str, ...] | None:
        """The vocabulary in ID order when the tokenizer has its own (gpt2), else None."""
        if self.encoding is None:
            return None
        from jaxembed.tokenize import gpt2_keys

        return gpt2_keys()

    def cut(self, data: bytes, final: bool) -> int:
        """Where a block may end so that no token is split: the rest waits for the next block."""
        if final:
            return len(data)
        if self.encoding is None:  # after the last ASCII whitespace: a word is never split
            return max(data.rfind(c) for c in _WHITESPACE) + 1
        cut = data.rfind(b"\n") + 1  # gpt2: whole lines, as BPE pieces carry their spaces
        if cut == 0 and len(data) > _LONG_LINE_BYTES:
            # A GPT-2 piece never holds a non-space followed by a space: cutting before a space
            # that follows a non-space gives exactly the tokens of the uncut line.
            for i in range(len(data) - 1, 0, -1):
                if data[i : i + 1] in (b" ", b"\t") and data[i - 1 : i] not in _WHITESPACE:
                    return i
        return cut

    def block(self, text: str, final: bool) -> tuple[list | np.ndarray, list[int]]:
        """(tokens, token count of each line piece of `text`), as `text.split("\\n")` cuts it.

        The last piece continues the line still open unless `final`.
        """
        if self.lowercase:  # once for the block, not per line
            text = text.lower()
        lines = text.split("\n")
        if self.encoding is not None:  # "\r\n" line ends: the "\r" is no token of the line
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        if self.name == "whitespace":
            return text.split(), [len(x.split()) for x in lines]
        if self.name == "words":
            from jaxembed.tokenize import split_words

            per_line = [split_words(line) for line in lines]
            return list(itertools.chain.from_iterable(per_line)), [len(x) for x in per_line]
        per_line = self._encode(lines)
        if self.end_of_text:  # after every completed line that holds tokens
            eot = self.encoding.eot_token
            for i, ids in enumerate(per_line):
                complete = i < len(per_line) - 1 or final
                if complete and (ids or (i == 0 and self.open_tokens)):
                    ids.append(eot)
        lengths = [len(ids) for ids in per_line]
        self.open_tokens = (self.open_tokens if len(lines) == 1 else 0) + lengths[-1]
        ids = np.fromiter(itertools.chain.from_iterable(per_line), np.int32, sum(lengths))
        return ids, lengths


def corpus_from_sentences(
    sentences: Iterable[Sequence[str]],
    min_count: int = 5,
    max_size: int | None = None,
    *,
    max_sentence_length: int = MAX_SENTENCE_LENGTH,
) -> Corpus:
    """A `Corpus` from sentences in memory: an iterable of token lists (gensim's `sentences=`).

    The same vocabulary, IDs and sentence pieces as `read_corpus` of a file with one sentence a
    line; the iterable is read once, so a generator works.

    Example:
      >>> corpus = corpus_from_sentences([["a", "rose", "is"], ["a", "rose"]], min_count=2)
      >>> corpus.vocab.index_to_key, corpus.ids_N.tolist()
      (('a', 'rose'), [0, 1, 0, 1])
    """
    positive_int("min_count", min_count)
    optional_positive_int("max_size", max_size)
    positive_int("max_sentence_length", max_sentence_length)
    index: dict[str, int] = collections.defaultdict(itertools.count().__next__)
    store, lengths, digest = _BlockStore(None), [], hashlib.blake2b(digest_size=16)
    for number, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise TypeError(
                f"sentence {number} is a str ({sentence[:40]!r}); sentences are lists of tokens "
                "- split it first, e.g. jaxembed.tokenize.split_words(text)"
            )
        tokens = list(sentence)
        bad = next((t for t in tokens if not isinstance(t, str) or not t), None)
        if bad is not None:
            raise TypeError(f"sentence {number} holds {bad!r}; tokens must be non-empty str")
        digest.update(("\x1f".join(tokens) + "\n").encode("utf-8", "surrogatepass"))
        store.append(np.fromiter(map(index.__getitem__, tokens), np.int32, len(tokens)))
        lengths.append(len(tokens))
    if not index:
        raise ValueError("the sentences hold no tokens - pass lists of tokens")
    counts_U = np.bincount(store.ids.data[: store.n], minlength=len(index))
    vocab = _vocab(list(index), counts_U, min_count, max_size)
    remap_U = np.full(len(index), -1, np.int32)
    remap_U[[index[w] for w in vocab.index_to_key]] = np.arange(len(vocab), dtype=np.int32)
    raw_starts = _sentence_starts(np.asarray(lengths, np.int64), max_sentence_length)
    ids_N, starts = store.encode(remap_U, int(vocab.counts.sum()), raw_starts)
    return Corpus(vocab, ids_N, starts, int(raw_starts[-1]), 0, digest.hexdigest())


def corpus_from_ids(ids_N, vocab: Vocab, sentence_starts=None) -> Corpus:
    """A `Corpus` from token IDs in memory, e.g. a GPT-2-encoded text and `Vocab(gpt2_keys())`.

    Args:
      ids_N: int IDs (N,), each < len(vocab).
      vocab: their vocabulary. Its counts steer subsampling and noise words; if they are all 0 they
        are counted from `ids_N`. A token of count 0 is never drawn as noise.
      sentence_starts: (S+1,) offsets of the sentences in ids_N, from 0 to N (default: one).

    Example:
      >>> corpus = corpus_from_ids([0, 1, 1, 2], Vocab.from_keys(["a", "b", "c"]), [0, 2, 4])
      >>> corpus.vocab.counts.tolist(), corpus.sentence_starts.tolist()
      ([1, 2, 1], [0, 2, 4])
    """
    from jaxembed.checks import check_ids

    ids_N = np.asarray(ids_N)
    if ids_N.ndim != 1 or not len(ids_N):
        raise ValueError(
            f"ids_N must be a non-empty 1-D array of token IDs; got shape {ids_N.shape}"
        )
    ids_N = check_ids(ids_N, len(vocab)).astype(np.int32)
    if not np.asarray(vocab.counts).any():
        vocab = Vocab(vocab.index_to_key, np.bincount(ids_N, minlength=len(vocab)), vocab.specials)
    starts = np.asarray([0, len(ids_N)] if sentence_starts is None else sentence_starts, np.int64)
    if starts[0] != 0 or starts[-1] != len(ids_N) or np.any(np.diff(starts) <= 0):
        raise ValueError(
            f"sentence_starts must rise from 0 to len(ids_N) = {len(ids_N)} (no empty sentence); "
            f"got {starts[:3].tolist()} ... {starts[-2:].tolist()}"
        )
    digest = hashlib.blake2b(ids_N.tobytes(), digest_size=16)
    digest.update(starts.tobytes())
    return Corpus(vocab, ids_N, starts, len(ids_N), 0, digest.hexdigest())


def _read(paths, min_count, max_size, max_sentence_length, cache_dir, progress, tokens) -> Corpus:
    # word -> provisional ID in order of first appearance; a new word's ID is assigned in C.
    # gpt2's tokens arrive as IDs already: they are their own provisional IDs.
    index: dict[str, int] = collections.defaultdict(itertools.count().__next__)
    fixed = tokens.fixed_vocab()
    counts_U = np.zeros(0 if fixed is None else len(fixed), np.int64)
    store = _BlockStore(cache_dir)
    raw_starts, n_undecodable = _Growing(np.int64), 0
    raw_starts.append(np.zeros(1, np.int64))
    digest = hashlib.blake2b(digest_size=16)
    bar = _bytes_bar(paths, progress)
    try:
        for path in paths:
            n_before = store.n
            for words, lengths, n_bad in _read_file(path, digest, bar.update, tokens):
                if fixed is None:
                    ids = np.fromiter(map(index.__getitem__, words), np.int32, len(words))
                else:
                    ids = words
                store.append(ids)
                if len(index) > len(counts_U):  # grow geometrically: O(words), not O(blocks * V)
                    counts_U = np.concatenate(
                        [counts_U, np.zeros(len(index) + len(counts_U), np.int64)]
                    )
                unique, counts = np.unique(ids, return_counts=True)
                counts_U[unique] += counts
                _append_sentences(raw_starts, lengths, max_sentence_length)
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
        if fixed is None:
            vocab = _vocab(list(index), counts_U[: len(index)], min_count, max_size)
            remap_U = np.full(len(index), -1, np.int32)
            remap_U[[index[w] for w in vocab.index_to_key]] = np.arange(len(vocab), dtype=np.int32)
        else:
            vocab, remap_U = _fixed_vocab(fixed, counts_U, min_count, max_size)
        raw_starts = raw_starts.array()
        ids_N, starts = store.encode(remap_U, int(vocab.counts.sum()), raw_starts)
    finally:
        bar.close()
        store.close()
        tokens.close()
    return Corpus(vocab, ids_N, starts, int(raw_starts[-1]), n_undecodable, digest.hexdigest())


def _read_file(path: str, digest, advance, tokens) -> Iterator[tuple[list[str], list[int], int]]:
    """Yields (tokens, token counts of the lines completed, n_undecodable) per block of the file.

    Every block read also updates `digest` (a hashlib object) and calls `advance` with the bytes
    of the stored file consumed since the last call.
    """
    rest, open_line, first, done = b"", 0, True, 0
    with open_compressed(path) as f:
        while True:
            try:
                block = f.read(_BLOCK_BYTES)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
                raise ValueError(f"{path}: compressed data is corrupt or truncated ({e})") from e
            digest.update(block)
            position = _stored_position(f, done + len(block))
            advance(position - done)
            done = position
            if first and block.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
                block = block[3:]
            if first:
                _refuse_utf16(path, block)
            first = False
            data = rest + block
            # Cut at whitespace (the tokenizer says which): a token or a UTF-8 sequence is never
            # split.
            cut = tokens.cut(data, final=not block)
            text, n_bad = _decode(data[:cut])
            rest = data[cut:]
            found, lengths = tokens.block(text, final=not block)
            lengths[0] += open_line
            open_line = lengths.pop()
            if not block:
                yield found, [*lengths, open_line], n_bad
                return
            yield found, lengths, n_bad


def _stored_position(f, fallback: int) -> int:
    """How far into the stored (maybe compressed) file `f` has read; `fallback` for a pipe."""
    raw = getattr(f, "raw_file", f)
    try:
        return raw.tell()
    except OSError:
        return fallback


def _bytes_bar(paths, enabled: bool):
    from tqdm.auto import tqdm

    total = None
    with contextlib.suppress(OSError):
        total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) or None
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="reading corpus",
        disable=not enabled,
        dynamic_ncols=True,
        leave=False,
    )


def _refuse_utf16(path: str, block: bytes) -> None:
    """UTF-16 text (a BOM, or every other byte NUL) would train on NUL-interleaved garbage."""
    head = block[:4096]
    bom = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    if bom or (len(head) >= 16 and head.count(0) >= len(head) // 3):
        raise ValueError(
            f"{path} looks like UTF-16 text ({'a UTF-16 byte-order mark' if bom else 'NUL bytes'}"
            "), not UTF-8 - convert it first, e.g. iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8"
        )


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
        raise ParameterError(
            f"no word occurs min_count={min_count} times (the most frequent, {keys[top]!r}, "
            f"occurs {counts_U[top]} times) - lower min_count to {counts_U[top]} or less, "
            "or use a larger corpus",
            "min_count",
        )
    return Vocab.from_counts(
        dict(zip(keys, counts_U.tolist(), strict=True)), "frequency", min_count, max_size
    )


def _fixed_vocab(keys, counts_V, min_count: int, max_size: int | None) -> tuple[Vocab, np.ndarray]:
    """A tokenizer's own vocabulary (gpt2), every key in ID order; the rare ones get count 0.

    Returns the Vocab and the ID map: the identity for the tokens kept, -1 (dropped) for the rest.
    """
    kept_V = counts_V >= min_count
    if max_size is not None and kept_V.sum() > max_size:
        order = np.lexsort((np.arange(len(counts_V)), -counts_V))  # most frequent, then lower ID
        kept_V = np.zeros_like(kept_V)
        kept_V[order[:max_size]] = True
        kept_V &= counts_V >= min_count
    if not kept_V.any():
        top = int(np.argmax(counts_V))
        raise ParameterError(
            f"no token occurs min_count={min_count} times (the most frequent, {keys[top]!r}, "
            f"occurs {counts_V[top]} times) - lower min_count to {counts_V[top]} or less, "
            "or use a larger corpus",
            "min_count",
        )
    ids_V = np.arange(len(keys), dtype=np.int32)
    return Vocab.from_keys(keys, np.where(kept_V, counts_V, 0)), np.where(kept_V, ids_V, -1)


def _sentence_starts(line_lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Raw word offsets (incl. the end) of sentences: non-empty lines cut into <= max_length pieces."""
    starts = _Growing(np.int64)
    starts.append(np.zeros(1, np.int64))
    _append_sentences(starts, line_lengths, max_length)
    return starts.array()


def _append_sentences(starts: _Growing, line_lengths, max_length: int) -> None:
    """Appends to `starts` (offsets so far, ending at the words so far) the sentence ends of
    lines of `line_lengths` words: empty lines dropped, long ones cut into max_length pieces."""
    lengths = np.asarray(line_lengths, np.int64)
    lengths = lengths[lengths > 0]
    if lengths.size and int(lengths.max()) > max_length:  # long lines are cut (rare)
        n_pieces = (lengths + max_length - 1) // max_length
        pieces = np.full(int(n_pieces.sum()), max_length, np.int64)
        pieces[np.cumsum(n_pieces) - 1] = lengths - (n_pieces - 1) * max_length
        lengths = pieces
    starts.append(starts.last() + np.cumsum(lengths))


class _Growing:
    """A 1-D array appended to in pieces, grown in place by a quarter (realloc: no copy of a large
    array, and at most a quarter more memory than it holds)."""

    def __init__(self, dtype, capacity: int = 1 << 16):
        self.data, self.n = np.empty(capacity, dtype), 0

    def append(self, x: np.ndarray) -> None:
        n = self.n + len(x)
        if n > len(self.data):
            self.data.resize(max(n, len(self.data) + len(self.data) // 4), refcheck=False)
        self.data[self.n : n] = x
        self.n = n

    def last(self):
        return self.data[self.n - 1]

    def array(self, n: int | None = None) -> np.ndarray:
        """The first n (default: all) values; the array is handed over (no copy)."""
        data, self.data = self.data, None
        data.resize(self.n if n is None else n, refcheck=False)
        return data


class _BlockStore:
    """Provisional IDs of each block: in one growing array in memory, or appended to a file in
    `cache_dir`. In memory the final IDs overwrite the provisional ones in place (a word's final
    position is never after its provisional one), so reading holds 4-5 bytes a word, not 8."""

    def __init__(self, cache_dir: str | None):
        self.dir, self.sizes, self.n = cache_dir, [], 0
        self.file, self.ids_path = None, ""
        self.ids = _Growing(np.int32, 1 << 20) if cache_dir is None else None
        if cache_dir is not None:
            fd, self.raw_path = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-raw-")
            self.file = os.fdopen(fd, "wb")

    def append(self, ids: np.ndarray) -> None:
        self.sizes.append(len(ids))
        self.n += len(ids)
        if self.file is None:
            self.ids.append(ids)
        else:
            self.file.write(ids.tobytes())

    def encode(self, remap_U, n_kept, raw_starts) -> tuple[np.ndarray, np.ndarray]:
        """Final IDs (words outside the vocabulary dropped) and the sentence starts among them."""
        raw_file = out_file = None
        if self.file is None:
            raw = ids_N = self.ids.data
        else:  # read and written a block at a time: the file pages are the page cache's, not
            self.file.close()  # this process's (a memory map would hold both files resident)
            raw_file, out_file = open(self.raw_path, "rb"), self._new_ids_file(n_kept)
        starts = np.empty_like(raw_starts)
        raw_pos, out = 0, 0
        try:
            for size in self.sizes:
                if raw_file is None:
                    block = raw[raw_pos : raw_pos + size]
                else:
                    block = np.fromfile(raw_file, np.int32, size)
                ids = remap_U[block]  # a copy: safe to write over raw
                kept = ids >= 0
                lo, hi = np.searchsorted(raw_starts, [raw_pos, raw_pos + size])
                kept_before = np.concatenate([[0], np.cumsum(kept)])
                starts[lo:hi] = out + kept_before[raw_starts[lo:hi] - raw_pos]
                if out_file is None:
                    ids_N[out : out + int(kept_before[-1])] = ids[kept]
                else:
                    out_file.write(ids[kept].tobytes())
                raw_pos, out = raw_pos + size, out + int(kept_before[-1])
            if out_file is not None:
                out_file.flush()
                os.fsync(out_file.fileno())
        finally:
            for f in (raw_file, out_file):
                if f is not None:
                    f.close()
        starts[-1] = out
        starts = starts[np.concatenate([[True], np.diff(starts) > 0])]  # drop emptied sentences
        if self.file is None:
            del raw, ids_N  # no view of the array is left
            ids_N = self.ids.array(n_kept)
        else:
            os.replace(self.ids_path, os.path.join(self.dir, "ids.npy"))
            ids_N = np.load(os.path.join(self.dir, "ids.npy"), mmap_mode="r")
        return ids_N, starts

    def _new_ids_file(self, n: int):
        """A fresh .npy file for n int32 (mkstemp: a new name, never a link), open after its
        header for the IDs to be written in order."""
        fd, self.ids_path = tempfile.mkstemp(dir=self.dir, prefix=".tmp-ids-", suffix=".npy")
        f = os.fdopen(fd, "wb")
        header = {"descr": np.dtype(np.int32).str, "fortran_order": False, "shape": (n,)}
        np.lib.format.write_array_header_1_0(f, header)
        return f

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
    with atomic_open(os.path.join(directory, "ids.npy")) as f:
        np.save(f, np.asarray(corpus.ids_N, np.int32))
    _write_meta(corpus, directory, None)


def load_corpus(directory: str | os.PathLike, mmap: bool = True) -> Corpus:
    """Reads a corpus written by `save_corpus` or `read_corpus(..., cache_dir=...)`.

    Args:
      directory: the folder.
      mmap: map ids.npy from disk (read-only) instead of loading it into memory.

    Example:
      >>> save_corpus(corpus, "cache/")
      >>> load_corpus("cache/", mmap=False).ids_N.dtype
      dtype('int32')
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
        meta.get("digest", ""),
    )


def _write_meta(corpus: Corpus, directory, source: dict | None) -> None:
    meta = {"n_raw_words": corpus.n_raw_words, "n_undecodable": corpus.n_undecodable}
    meta["digest"] = corpus.digest
    meta["source"] = source
    with atomic_open(os.path.join(directory, "sentence_starts.npy")) as f:
        np.save(f, corpus.sentence_starts)
    corpus.vocab.save(os.path.join(directory, "vocab.txt"))
    with atomic_open(os.path.join(directory, "corpus.json"), "w") as f:
        json.dump(meta, f, indent=1)


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
