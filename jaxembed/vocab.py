"""Vocabulary: the map between tokens and integer IDs (pipeline step: tokens -> token IDs).

A `Vocab` is immutable. Special tokens (e.g. "<|unk|>", "<|endoftext|>") always take the first IDs;
the other tokens follow in alphabetical order (as in the lecture) or by frequency, most frequent
first with ties broken by token (as flax's sst2 example does).

    >>> vocab = Vocab.build("quick fox is in the house".split())
    >>> vocab.index_to_key
    ('fox', 'house', 'in', 'is', 'quick', 'the')
    >>> vocab.encode(["in", "is", "the", "house"]).tolist()
    [2, 3, 5, 1]

File format (`save` / `load`), UTF-8, "\\n" line ends:

    #jaxembed-vocab v1 size=<V> specials=<S>
    <token>\\t<count>            (V lines, in ID order; the first S are the specials)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal

import numpy as np

from jaxembed.checks import check_ids, optional_positive_int
from jaxembed.files import atomic_open

UNK = "<|unk|>"
ENDOFTEXT = "<|endoftext|>"

Order = Literal["alphabetical", "frequency"]
_ORDERS = ("alphabetical", "frequency")
_MAGIC = "#jaxembed-vocab"
_VERSION = "v1"


@dataclasses.dataclass(frozen=True, eq=False)
class Vocab:
    """An immutable token <-> ID map with corpus counts.

    Build one with `Vocab.build`, `Vocab.from_counts`, `Vocab.from_keys` or `Vocab.load` rather than
    calling the constructor, which only validates.
    """

    index_to_key: tuple[str, ...]  # token of each ID (gensim's name); unique
    counts: np.ndarray  # int64 (V,), read-only: corpus count of each token (0 if never seen)
    specials: tuple[str, ...] = ()  # special tokens; they are index_to_key[: len(specials)]

    def __post_init__(self) -> None:
        keys = tuple(self.index_to_key)
        _check_tokens(keys, "index_to_key")
        if not keys:
            raise ValueError("a Vocab needs at least one token; got none")
        _check_unique(keys, "index_to_key")
        specials = tuple(self.specials)
        if keys[: len(specials)] != specials:
            raise ValueError(
                f"specials {specials!r} must be the first tokens of index_to_key; "
                f"got {keys[: len(specials)]!r} - build with Vocab.build(..., specials=...)"
            )
        counts = _as_counts(self.counts, len(keys))
        object.__setattr__(self, "index_to_key", keys)
        object.__setattr__(self, "specials", specials)
        object.__setattr__(self, "counts", counts)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        order: Order = "alphabetical",
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> Vocab:
        """Counts `tokens` and builds a vocabulary of them.

        Args:
          tokens: the corpus as a stream of tokens (e.g. from `split_words`), not a str.
          order: "alphabetical" (sorted by code point, uppercase before lowercase) or "frequency"
            (by descending count, ties by token). Specials always come first.
          min_count: drop tokens seen fewer times than this (specials are always kept).
          max_size: at most this many IDs in total, specials included; when tokens must be dropped,
            the least frequent go first (ties: the later token in sorted order), whatever `order`.
          specials: special tokens, given the first IDs in this order (e.g. ("<|unk|>",)).

        Returns:
          The Vocab. Raises ValueError if it would be empty.

        Example:
          >>> Vocab.build("a b b c c c".split(), order="frequency").index_to_key
          ('c', 'b', 'a')
        """
        if isinstance(tokens, str):
            raise TypeError(
                "build takes an iterable of tokens, not a str (that would count characters) - "
                "split the text first, e.g. Vocab.build(split_words(text))"
            )
        return cls.from_counts(
            collections.Counter(tokens),
            order=order,
            min_count=min_count,
            max_size=max_size,
            specials=specials,
        )

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        order: Order = "frequency",
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> Vocab:
        """Builds a vocabulary from token counts (e.g. a `collections.Counter` filled by streaming).

        Args and ordering as in `Vocab.build` (but the default order is "frequency"). A special token
        that also occurs in `counts` keeps its count; other specials get count 0.

        Example:
          >>> Vocab.from_counts({"a": 1, "b": 5}, specials=["<|unk|>"]).index_to_key
          ('<|unk|>', 'b', 'a')
        """
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}; got {order!r}")
        if not isinstance(min_count, int | np.integer) or min_count < 0:
            raise ValueError(f"min_count must be an integer >= 0; got {min_count!r}")
        specials = tuple(specials)
        _check_tokens(specials, "specials")
        _check_unique(specials, "specials")
        optional_positive_int("max_size", max_size)
        if max_size is not None and max_size < len(specials):
            raise ValueError(
                f"max_size={max_size} leaves no room for the {len(specials)} specials "
                f"(max_size counts them) - raise max_size to at least {len(specials)}"
            )
        _check_tokens(tuple(counts), "counts")
        for token, count in counts.items():
            if not isinstance(count, int | np.integer) or count < 0:
                raise ValueError(f"count of {token!r} must be an integer >= 0; got {count!r}")

        special_set = set(specials)
        kept = [(t, int(c)) for t, c in counts.items() if t not in special_set and c >= min_count]
        kept.sort(key=lambda tc: (-tc[1], tc[0]))
        if max_size is not None:
            kept = kept[: max_size - len(specials)]
        if order == "alphabetical":
            kept.sort(key=lambda tc: tc[0])
        if not kept and not specials:
            most = max(counts.items(), key=lambda tc: tc[1], default=None)
            hint = f" (the most frequent, {most[0]!r}, has count {most[1]})" if most else ""
            raise ValueError(
                f"no token has count >= min_count={min_count}{hint} and there are no specials - "
                "give a non-empty corpus or lower min_count"
            )
        keys = specials + tuple(t for t, _ in kept)
        all_counts = [int(counts.get(t, 0)) for t in specials] + [c for _, c in kept]
        return cls(keys, np.asarray(all_counts, dtype=np.int64), specials)

    @classmethod
    def from_keys(cls, keys: Sequence[str], counts: Sequence[int] | None = None) -> Vocab:
        """Wraps tokens already in ID order (e.g. the rows of a loaded vector file).

        Args:
          keys: token of each ID; must be unique.
          counts: count of each token; zeros when None.

        Returns:
          The Vocab, without specials ("<|unk|>" still maps unknown tokens if it is among `keys`).

        Example:
          >>> Vocab.from_keys(["the", "cat"])["cat"]
          1
        """
        if isinstance(keys, str):
            raise TypeError("from_keys takes a sequence of tokens, not a str")
        keys = tuple(keys)
        if counts is None:
            counts = np.zeros(len(keys), dtype=np.int64)
        return cls(keys, counts)

    # ------------------------------------------------------------------ lookups

    @functools.cached_property
    def key_to_index(self) -> dict[str, int]:
        """ID of each token (gensim's name). Treat it as read-only."""
        return {token: i for i, token in enumerate(self.index_to_key)}

    @functools.cached_property
    def byte_level(self) -> bool:
        """Whether the keys are byte-level BPE tokens in GPT-2's form ("Ġking" is " king").

        GPT-2's vocabulary (`jaxembed train --tokenizer gpt2`) has most keys starting with "Ġ",
        the character GPT-2 writes for a space; a vocabulary of words has next to none.
        """
        keys = self.index_to_key
        return len(keys) > 0 and sum(k.startswith("Ġ") for k in keys) >= 0.2 * len(keys)

    @property
    def unk_id(self) -> int | None:
        """ID of "<|unk|>", or None when the vocabulary has no such token."""
        return self.key_to_index.get(UNK)

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.index_to_key)

    def __contains__(self, token: object) -> bool:
        return token in self.key_to_index

    def __getitem__(self, token: str) -> int:
        """ID of one token; unknown tokens behave as in `encode`."""
        return int(self.encode([token])[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (
            self.index_to_key == other.index_to_key
            and self.specials == other.specials
            and np.array_equal(self.counts, other.counts)
        )

    def __hash__(self) -> int:
        return hash((self.index_to_key, self.specials, self.counts.tobytes()))

    def __reduce__(self):
        # Pickle through the constructor, so that a copy is validated and its counts read-only.
        return (type(self), (self.index_to_key, self.counts, self.specials))

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.index_to_key[:8])
        more = ", ..." if len(self) > 8 else ""
        return f"Vocab(size={len(self)}, specials={self.specials!r}, tokens=({head}{more}))"

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Maps tokens to IDs.

        Args:
          tokens: a sequence of tokens (not a str).

        Returns:
          int32 array (N,). Unknown tokens get the ID of "<|unk|>" if the vocabulary has it;
          otherwise a KeyError names the first unknown token.

        Example:
          >>> Vocab.build("quick fox is in the house".split()).encode(["in", "is"]).tolist()
          [2, 3]
        """
        if isinstance(tokens, str):
            raise TypeError(
                f"encode takes a sequence of tokens, not a str; got {tokens[:40]!r} - "
                "split it first, e.g. vocab.encode(split_words(text))"
            )
        index, unk = self.key_to_index, self.unk_id
        ids = []
        for position, token in enumerate(tokens):
            i = index.get(token, unk)
            if i is None:
                raise KeyError(
                    f"token {token!r} (position {position}) is not in the vocabulary of "
                    f"{len(self)} tokens - build it with specials=('{UNK}',) to map unknown "
                    "tokens to an ID"
                )
            ids.append(i)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Maps IDs back to tokens.

        Args:
          ids: 1-D integers: a list, numpy or JAX array.

        Returns:
          The tokens. Float IDs raise TypeError; IDs outside [0, V) raise ValueError.

        Example:
          >>> Vocab.build("quick fox is in the house".split()).decode([2, 3, 5, 1])
          ['in', 'is', 'the', 'house']
        """
        ids_N = check_ids(ids, len(self))
        if ids_N.ndim != 1:
            raise ValueError(
                f"decode takes 1-D IDs; got shape {ids_N.shape} - decode each row, "
                "e.g. [vocab.decode(row) for row in ids]"
            )
        return [self.index_to_key[i] for i in ids_N.tolist()]

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary atomically (temporary file in the same folder, then rename).

        Tokens containing a tab, newline or carriage return cannot be written: ValueError.

        Example:
          >>> vocab = Vocab.build(["to", "be", "or", "not", "to", "be"])
          >>> vocab.save("vocab.tsv")
          >>> Vocab.load("vocab.tsv") == vocab
          True
        """
        for i, token in enumerate(self.index_to_key):
            bad = next((c for c in ("\t", "\n", "\r") if c in token), None)
            if bad is not None:
                raise ValueError(
                    f"token {token!r} (ID {i}) contains {bad!r}, which the one-token-a-line "
                    "vocabulary file cannot hold - clean such tokens before building the Vocab"
                )
        lines = [f"{_MAGIC} {_VERSION} size={len(self)} specials={len(self.specials)}\n"]
        lines += [
            f"{t}\t{c}\n" for t, c in zip(self.index_to_key, self.counts.tolist(), strict=True)
        ]
        try:
            data = "".join(lines).encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"a token cannot be written as UTF-8: {e}") from e
        with atomic_open(path) as f:
            f.write(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Reads a file written by `save`.

        Raises FileNotFoundError for a missing file and ValueError naming the line for a truncated
        or malformed file, a bad count or a duplicate token.

        Example:
          >>> Vocab.build(["to", "be", "or", "not", "to", "be"]).save("vocab.tsv")
          >>> Vocab.load("vocab.tsv").index_to_key
          ('be', 'not', 'or', 'to')
        """
        path = os.fspath(path)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 ({e}) - is this a jaxembed vocabulary?") from e
        # Split on "\n" only: str.splitlines would also split inside tokens at \x85, \u2028, ...
        lines = text.split("\n")
        header, body = lines[0], lines[1:]
        size, n_specials = _parse_header(header, path)
        if not text.endswith("\n") or len(body) - 1 < size:
            raise ValueError(
                f"{path}: truncated - the header promises {size} tokens but "
                f"{max(len(body) - 1, 0)} complete lines follow; save the vocabulary again"
            )
        if body[-1] != "" or len(body) - 1 > size:
            raise ValueError(
                f"{path}: line {size + 2}: extra content after the {size} tokens the header promises"
            )
        # The common case in a few passes over the lines; any doubt takes the careful loop below,
        # which names the line at fault.
        parts = [line.rpartition("\t") for line in body[:size]]
        keys = [token for token, _, _ in parts]
        numbers = [count for _, _, count in parts]
        digits = "".join(numbers)
        if (
            all(keys)
            and all(map(len, numbers))  # a token, a tab and a count on every line
            and max(map(len, numbers), default=0) < 19
            and (not digits or (digits.isascii() and digits.isdigit()))
            and len(set(keys)) == len(keys)
        ):
            counts = np.fromiter(map(int, numbers), np.int64, len(numbers))
            return cls(tuple(keys), counts, tuple(keys[:n_specials]))
        keys, counts, seen = [], [], {}
        for lineno, line in enumerate(body[:size], start=2):
            token, sep, count = line.rpartition("\t")
            if not sep or not count.isascii() or not count.isdigit():
                raise ValueError(
                    f"{path}: line {lineno}: expected 'token<TAB>count' with a count >= 0; "
                    f"got {line[:60]!r}"
                )
            if token in seen:
                raise ValueError(
                    f"{path}: line {lineno}: duplicate token {token!r} (first on line "
                    f"{seen[token]}) - a vocabulary maps each token to one ID"
                )
            if int(count) >= 2**63:
                raise ValueError(
                    f"{path}: line {lineno}: count {count[:30]} is too large (counts are int64)"
                )
            seen[token] = lineno
            keys.append(token)
            counts.append(int(count))
        return cls(tuple(keys), np.asarray(counts, dtype=np.int64), tuple(keys[:n_specials]))


def _check_tokens(tokens: tuple, what: str) -> None:
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"{what} must hold str tokens; got {token!r} at position {i}")


def _check_unique(tokens: tuple[str, ...], what: str) -> None:
    if len(set(tokens)) == len(tokens):
        return
    first = {}
    for i, token in enumerate(tokens):
        if token in first:
            raise ValueError(
                f"{what} must be unique; {token!r} is at positions {first[token]} and {i} - "
                "drop the duplicates (a token has one ID)"
            )
        first[token] = i


def _as_counts(counts, size: int) -> np.ndarray:
    array = np.asarray(counts)
    if array.shape != (size,):
        raise ValueError(f"counts must have shape ({size},), one per token; got {array.shape}")
    if size and array.dtype.kind not in "iu":
        raise TypeError(f"counts must be integers; got dtype {array.dtype}")
    if size and array.min() < 0:
        raise ValueError(f"counts must be >= 0; got {int(array.min())}")
    array = array.astype(np.int64)  # always a copy: nobody else holds a writable view
    array.setflags(write=False)
    return array


def _parse_header(header: str, path: str) -> tuple[int, int]:
    parts = header.split(" ")
    fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    try:
        if parts[0] != _MAGIC or parts[1] != _VERSION:
            raise ValueError
        size, n_specials = int(fields["size"]), int(fields["specials"])
        if not 0 <= n_specials <= size:
            raise ValueError
    except (ValueError, KeyError, IndexError):
        raise ValueError(
            f"{path}: line 1: expected the header '{_MAGIC} {_VERSION} size=<V> specials=<S>'; "
            f"got {header[:60]!r} - write vocabulary files with Vocab.save"
        ) from None
    return size, n_specials
