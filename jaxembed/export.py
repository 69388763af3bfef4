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
    lines = (f"{w} {r}\n" for w, r in zip(keys, _text_rows(block_BxD, " "), strict=True))
    return "".join(lines).encode()


def _text_rows(block_BxD: np.ndarray, sep: str) -> list[str]:
    # numpy's shortest repr (astype(str)) reads back to the same float32: text round trips are exact.
    return [sep.join(r) for r in block_BxD.astype(str).tolist()]


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
            vectors.write("".join(r + "\n" for r in rows).encode())
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
