"""Atomic file writes: a file is replaced only once its new content is complete and on disk.

Every writer in jaxembed (vocabularies, vector files, corpus caches, run outputs, figures) goes
through `atomic_open`, so a killed process leaves either the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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
      >>> with atomic_open("out/report.md", "w") as f:
      ...     f.write("# Report\\n")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb'; got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; use the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
