"""Files: atomic writes, compressed reads, JSON and .npy rows, for every module of the package.

Every writer in jaxembed (vocabularies, vector files, corpus caches, run outputs, figures) goes
through `atomic_open`, so a killed process leaves either the old file or the new one, never half.
Every reader of text that may be compressed (corpora, vector files) goes through
`open_compressed`, which recognises gzip, bzip2 and xz by their magic bytes, not by the name.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

_MAGIC_OPENERS = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
_SUFFIX_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary file beside `path`; on success it is synced and renamed onto `path`.

    Args:
      path: the file to (re)write; its folder must exist.
      mode: "wb" (default) or "w" (UTF-8 text).

    Yields:
      The open temporary file. On an error it is removed and `path` is left as it was.

    Example:
      >>> with atomic_open("report.md", "w") as f:
      ...     _ = f.write("# Report\\n")
      >>> open("report.md").read()
      '# Report\\n'
    """
    with atomic_group([path], mode) as (f,):
        yield f


@contextlib.contextmanager
def atomic_group(paths: Sequence[str | os.PathLike], mode: str = "wb") -> Iterator[list[IO]]:
    """As `atomic_open` for several files that belong together: all are replaced, or none.

    Each file is written to a temporary file beside it; only when every one is complete and
    synced are they renamed into place (renames only: no data is written between them).

    Example:
      >>> with atomic_group(["vectors.tsv", "metadata.tsv"], "w") as (vectors, metadata):
      ...     _ = vectors.write("0.1\\t0.2\\n"), metadata.write("king\\n")
      >>> open("metadata.tsv").read()
      'king\\n'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb'; got {mode!r}")
    paths = [Path(p) for p in paths]
    temps, files = [], []
    try:
        for path in paths:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append(tmp)
            files.append(os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})))
        yield files
        for f, tmp in zip(files, temps, strict=True):
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private: the usual permissions
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
    except BaseException:
        for f in files:
            f.close()
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open_compressed(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """As `atomic_open` in binary mode, compressing by the suffix (.gz, .bz2, .xz) if it has one."""
    path = Path(path)
    opener = _SUFFIX_OPENERS.get(path.suffix.lower())
    with atomic_open(path) as raw:
        if opener is None:
            yield raw
        else:
            with opener(raw, "wb") as f:
                yield f


def open_compressed(path: str | os.PathLike) -> IO[bytes]:
    """Opens `path` for reading bytes, decompressing gzip/bzip2/xz recognised by their magic bytes.

    Example:
      >>> import lzma
      >>> with lzma.open("corpus.txt.xz", "wt") as f: _ = f.write("the first line\\nand more\\n")
      >>> with open_compressed("corpus.txt.xz") as f: f.readline()
      b'the first line\\n'
    """
    raw = open(path, "rb")  # opened once and peeked at: a pipe (<(cat f)) cannot be read twice
    magic = raw.peek(6)[:6]
    for prefix, opener in _MAGIC_OPENERS:
        if magic.startswith(prefix):
            stream = opener(raw, "rb")
            close = stream.close

            def close_both(close=close):  # the decompressor leaves a file it was given open
                try:
                    close()
                finally:
                    raw.close()

            stream.close = close_both
            stream.raw_file = raw  # how far into the stored file (for a progress bar)
            return stream
    return raw


def open_text(path: str | os.PathLike) -> IO[str]:
    """`open_compressed` as UTF-8 text, undecodable bytes replaced by U+FFFD."""
    return io.TextIOWrapper(open_compressed(path), encoding="utf-8", errors="replace")


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Writes ``obj`` as indented JSON atomically; numpy and JAX values become lists and numbers.

    Example:
      >>> write_json("out/results.json", {"shape": np.zeros((2, 3)).shape, "cos": np.float32(0.5)})
      PosixPath('out/results.json')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent, default=_jsonable, allow_nan=True)
        f.write("\n")
    return path


def _jsonable(value: Any) -> Any:
    """JSON form of numpy/JAX arrays and scalars (json.dump's `default`)."""
    if hasattr(value, "__array__"):
        array = np.asarray(value)
        return array.item() if array.ndim == 0 else array.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_npy_rows(path: str | os.PathLike, n: int) -> np.ndarray:
    """The first n rows of a 2-D .npy file as float32, read straight into one new array."""
    mapped = np.load(path, mmap_mode="r")  # only to learn the layout: no data is read
    if not mapped.flags.c_contiguous:
        return np.array(mapped[:n], dtype=np.float32)
    dim = mapped.shape[1]
    rows = np.fromfile(path, dtype=mapped.dtype, count=n * dim, offset=mapped.offset)
    return rows.reshape(n, dim).astype(np.float32, copy=False)
