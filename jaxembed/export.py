"""Writing word vectors: word2vec text and binary, GloVe text, gensim, the Embedding Projector.

The formats are those `jaxembed.io.load_vectors` reads. A path ending in .gz, .bz2 or .xz is
compressed. Text is written with the shortest decimal that reads back to the same float32, so text
round trips are exact - byte for byte what gensim writes. Every file is written atomically.

    >>> head = Vocab.from_keys(vocab.index_to_key[:1000])  # the 1,000 most frequent words
    >>> save_vectors(table_VxD[:1000], head, "vectors.txt.gz")
    >>> export_projector(table_VxD[:1000], head, "projector/")
    (PosixPath('projector/vectors.tsv'), PosixPath('projector/metadata.tsv'))
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxembed.checks import one_of
from jaxembed.files import atomic_group, atomic_open_compressed
from jaxembed.vocab import Vocab

FORMATS = ("word2vec", "word2vec-binary", "glove")
_BLOCK_ROWS = 1024  # rows formatted per numpy call: bounds the temporary memory (~30 MB)


def save_vectors(
    table_VxD: np.ndarray, vocab: Vocab, path: str | os.PathLike, format: str = "word2vec"
) -> None:
    """Writes vectors atomically in a format gensim's `KeyedVectors.load_word2vec_format` reads.

    Args:
      table_VxD: (V, D) vectors, row i for `vocab.index_to_key[i]` (numpy or JAX; saved as float32).
      vocab: the V words, none containing a space or newline (the formats cannot hold them).
      path: the file; a .gz, .bz2 or .xz suffix compresses it.
      format: "word2vec" (text with a "V D" header), "word2vec-binary" (the Google News format,
        each record ending in "\\n" as the C tool writes it) or "glove" (text, no header).

    Example:
      >>> from gensim.models import KeyedVectors
      >>> save_vectors(table_VxD, vocab, "vectors.bin", format="word2vec-binary")
      >>> kv = KeyedVectors.load_word2vec_format("vectors.bin", binary=True)
      >>> bool((kv.vectors == table_VxD).all())  # read back exactly
      True
    """
    one_of("format", format, FORMATS)
    table_VxD = _check_pair(table_VxD, vocab)
    keys = vocab.index_to_key
    for i, word in enumerate(keys):
        if not word:
            raise ValueError(
                f"word {i} is empty, which {format} files cannot hold (it would not read back) "
                "- give it a name or drop it"
            )
        if " " in word or "\n" in word or "\r" in word:
            raise ValueError(
                f"word {word!r} (ID {i}) contains a space or line break, which {format} files "
                "cannot hold (gensim splits on them) - replace it, e.g. with '_'"
            )
    num_words, dim = table_VxD.shape
    with atomic_open_compressed(path) as f:
        if format != "glove":
            f.write(f"{num_words} {dim}\n".encode())
        for start in range(0, num_words, _BLOCK_ROWS):
            stop = start + _BLOCK_ROWS
            f.write(_encode_block(format, keys[start:stop], table_VxD[start:stop]))


def _encode_block(format: str, keys: tuple[str, ...], block_BxD: np.ndarray) -> bytes:
    if format == "word2vec-binary":
        rows = block_BxD.astype("<f4")
        records = (w.encode() + b" " + r.tobytes() + b"\n" for w, r in zip(keys, rows, strict=True))
        return b"".join(records)
    rows = _text_rows(block_BxD, " ")
    return b"".join(w.encode() + b" " + r + b"\n" for w, r in zip(keys, rows, strict=True))


def _text_rows(block_BxD: np.ndarray, sep: str) -> list[bytes]:
    """Each row's values as numpy writes each float32 (`str(np.float32(v))`), joined by `sep`.

    numpy's shortest repr reads back to the same float32, so text round trips are exact. Its
    formatter (Dragon4, one value at a time) took 0.73 us a value; most values here are written
    by whole-array arithmetic instead: the shortest digits that read back, then fixed-width
    character columns with the blanks squeezed out. The rest (|v| < 1e-4 or >= 1e6, which numpy
    writes in scientific notation; 0, inf, nan) are numpy's own strings.
    """
    rows, dim = block_BxD.shape
    if not dim:
        return [b""] * rows
    x_N = np.ascontiguousarray(block_BxD, np.float32).ravel()
    abs_N = np.abs(x_N)
    a_N = abs_N.astype(np.float64)  # exact
    fast_N = (a_N >= 1e-4) & (a_N < 10.0**_INTEGER_DIGITS)  # numpy's positional range
    digits_N, scale_N, found_N = _shortest_digits(
        np.where(fast_N, a_N, 1.0), np.where(fast_N, abs_N, np.float32(1))
    )
    fast_N &= found_N & (scale_N <= _FRACTION_DIGITS)
    # The value times 10**_FRACTION_DIGITS: an integer below 10**18.
    fixed_N = np.where(fast_N, digits_N, 0) * 10 ** (
        _FRACTION_DIGITS - np.where(fast_N, scale_N, 0)
    )
    shown_N = np.maximum(scale_N, 1)  # fraction digits written ("1.0", not "1.")
    # Columns: sign, 6 integer digits, ".", 12 fraction digits, separator; 0 = blank.
    chars_NxW = np.zeros((len(x_N), 2 + _INTEGER_DIGITS + _FRACTION_DIGITS + 1), np.uint8)
    chars_NxW[:, 0] = np.where(np.signbit(x_N), ord("-"), 0)
    point = 1 + _INTEGER_DIGITS
    fraction_N = fixed_N % 10**_FRACTION_DIGITS
    parts = (  # int32 pieces of 6 digits, each written from its last digit
        (fraction_N % 10**6, range(point + 12, point + 6, -1)),
        (fraction_N // 10**6, range(point + 6, point, -1)),
        (fixed_N // 10**_FRACTION_DIGITS, range(point - 1, 0, -1)),
    )
    for part_N, columns in parts:
        q_N = part_N.astype(np.int32)
        for c in columns:
            chars_NxW[:, c] = q_N % 10 + 48
            q_N //= 10
    chars_NxW[:, point] = ord(".")
    for i in range(1, _INTEGER_DIGITS):  # blank before the first integer digit (keep "0.")
        chars_NxW[fixed_N < 10 ** (_FRACTION_DIGITS + _INTEGER_DIGITS - i), i] = 0
    for i in range(1, _FRACTION_DIGITS + 1):  # blank after the last fraction digit
        chars_NxW[shown_N < i, point + i] = 0
    sep_N = np.full(len(x_N), ord(sep), np.uint8)
    sep_N[dim - 1 :: dim] = ord("\n")
    chars_NxW[:, -1] = sep_N
    slow = np.flatnonzero(~fast_N)
    if len(slow):
        texts = [str(x_N[i]).encode() for i in slow]
        width = max(chars_NxW.shape[1], 1 + max(map(len, texts)))
        chars_NxW = np.pad(chars_NxW, [(0, 0), (0, width - chars_NxW.shape[1])])
        chars_NxW[slow] = 0
        for i, text in zip(slow, texts, strict=True):
            chars_NxW[i, : len(text)] = np.frombuffer(text, np.uint8)
        chars_NxW[slow, -1] = sep_N[slow]
    flat = chars_NxW.ravel()
    return flat[flat != 0].tobytes().split(b"\n")[:rows]


_INTEGER_DIGITS = 6  # numpy writes float32 positionally from 1e-4 up to 1e6 (then 1e+06)
_FRACTION_DIGITS = 12  # 9 significant digits from 1e-4 on
_POW10 = 10.0 ** np.arange(23)  # exact in float64


def _shortest_digits(a_N: np.ndarray, abs_N: np.ndarray) -> tuple[np.ndarray, ...]:
    """(digits, scale, found): the fewest decimal digits, digits / 10**scale, that read back as
    the float32 `abs_N` (`a_N`: the same, float64, positive); of two, the nearer; of two as near,
    the even one (numpy's choice). Reading a decimal back goes through float64, as numpy's and
    gensim's readers do."""
    e_N = np.floor(np.log10(a_N)).astype(np.int64)  # off by one at worst: then more digits
    digits_N, k_N = _decimal_near(a_N, abs_N, e_N, 9)  # 9 digits always read back (float32)
    found_N = digits_N >= 0
    for p in (8, 7):  # on the whole block: most float32 values need 7 to 9 digits
        fewer_N, fewer_k_N = _decimal_near(a_N, abs_N, e_N, p)
        ok_N = fewer_N >= 0
        digits_N, k_N = np.where(ok_N, fewer_N, digits_N), np.where(ok_N, fewer_k_N, k_N)
    live = np.flatnonzero(ok_N)  # 7 digits did: fewer are tried on a shrinking set
    for p in range(6, 0, -1):
        if not len(live):
            break
        few, few_k = _decimal_near(a_N[live], abs_N[live], e_N[live], p)
        ok = few >= 0
        digits_N[live[ok]], k_N[live[ok]] = few[ok], few_k[ok]
        live = live[ok]
    for _ in range(9):  # no trailing zeros (e.g. 10 found as two digits)
        zero = (digits_N % 10 == 0) & (digits_N != 0)
        if not zero.any():
            break
        digits_N, k_N = np.where(zero, digits_N // 10, digits_N), np.where(zero, k_N - 1, k_N)
    return digits_N, k_N, found_N


def _decimal_near(a_N, abs_N, e_N, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(digits, scale) of the p-significant-digit decimal next to a_N that reads back as abs_N
    (the nearer of the two around it, a tie to the even), digits -1 where neither does."""
    k_N = p - 1 - e_N
    if (k_N >= 0).all():  # the usual case (|v| < 10**(p - 1)): multiply, and divide back
        f_N = _POW10[k_N]
        s_N = a_N * f_N
        lo_N = np.floor(s_N)
        ok_lo = (lo_N / f_N).astype(np.float32) == abs_N
        ok_hi = ((lo_N + 1) / f_N).astype(np.float32) == abs_N
    else:
        up_N, f_N = k_N >= 0, _POW10[np.abs(k_N)]
        s_N = np.where(up_N, a_N * f_N, a_N / f_N)
        lo_N = np.floor(s_N)
        back = [np.where(up_N, c / f_N, c * f_N).astype(np.float32) for c in (lo_N, lo_N + 1)]
        ok_lo, ok_hi = back[0] == abs_N, back[1] == abs_N
    below, above = s_N - lo_N, lo_N + 1 - s_N
    take_lo = ok_lo & (~ok_hi | (below < above) | ((below == above) & (lo_N % 2 == 0)))
    digits_N = np.where(take_lo, lo_N, np.where(ok_hi, lo_N + 1, -1)).astype(np.int64)
    return digits_N, k_N


def export_projector(
    table_VxD: np.ndarray, vocab: Vocab, out_dir: str | os.PathLike
) -> tuple[Path, Path]:
    """Writes vectors.tsv and metadata.tsv for the TensorFlow Embedding Projector.

    Load both at https://projector.tensorflow.org ("Load" -> vectors, then metadata). vectors.tsv has
    one tab-separated row per word; metadata.tsv has one word per line and no header line, which is
    the Projector's rule for single-column metadata.

    Args:
      table_VxD: (V, D) vectors.
      vocab: the V words (no tabs or line breaks).
      out_dir: created if missing; existing vectors.tsv/metadata.tsv are replaced atomically.

    Returns:
      (path of vectors.tsv, path of metadata.tsv).

    Example:
      >>> head = Vocab.from_keys(vocab.index_to_key[:10_000])
      >>> vectors_tsv, metadata_tsv = export_projector(table_VxD[:10_000], head, "projector/")
      >>> metadata_tsv.read_text().split()[:3]
      ['the', ',', '.']
    """
    table_VxD = _check_pair(table_VxD, vocab)
    for i, word in enumerate(vocab.index_to_key):
        if "\t" in word or "\n" in word or "\r" in word:
            raise ValueError(f"word {word!r} (ID {i}) contains a tab or line break - replace it")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vectors_path, metadata_path = out / "vectors.tsv", out / "metadata.tsv"
    # Both files are replaced together: a failure leaves the old pair as it was.
    with atomic_group([vectors_path, metadata_path]) as (vectors, metadata):
        for start in range(0, len(table_VxD), _BLOCK_ROWS):
            rows = _text_rows(table_VxD[start : start + _BLOCK_ROWS], "\t")
            vectors.write(b"".join(r + b"\n" for r in rows))
        metadata.write("".join(w + "\n" for w in vocab.index_to_key).encode())
    return vectors_path, metadata_path


def _check_pair(table_VxD, vocab: Vocab) -> np.ndarray:
    table_VxD = np.asarray(table_VxD)
    if table_VxD.ndim != 2 or table_VxD.shape[0] != len(vocab):
        raise ValueError(
            f"table must have shape ({len(vocab)}, D), one row per vocabulary word; got "
            f"{table_VxD.shape} - pass the table and the Vocab it was built with"
        )
    return table_VxD.astype(np.float32, copy=False)


def to_keyed_vectors(table_VxD: np.ndarray, vocab: Vocab):
    """Wraps vectors as gensim `KeyedVectors` (a copy), with "count" set when the vocab has counts.

    Example:
      >>> kv = to_keyed_vectors(table_VxD, vocab)
      >>> [word for word, _ in kv.most_similar("king", topn=3)]
      ['prince', 'queen', 'ii']
    """
    from gensim.models import KeyedVectors

    table_VxD = _check_pair(table_VxD, vocab)
    kv = KeyedVectors(table_VxD.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(list(vocab.index_to_key), table_VxD)
    if vocab.counts.any():
        kv.allocate_vecattrs(["count"], [np.int64])
        kv.expandos["count"][:] = vocab.counts
    return kv
