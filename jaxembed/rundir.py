"""A run directory: what `jaxembed.loop.fit` writes there and how it is read back.

    DIR/checkpoints/step_<N>/ orbax checkpoints: the TrainState and the loop's progress (JSON)
    DIR/vectors.txt           the learned vectors, word2vec text format (gensim reads it)
    DIR/vocab.txt             the vocabulary with its corpus counts
    DIR/table.npy             the learned input table, float32, one row per vocabulary word
    DIR/run.json              settings and metrics; written last, so it marks a finished run

Every file is written atomically. Orbax writes each checkpoint into a temporary directory and
renames it when complete, so a killed run never leaves a half-written one; it keeps the newest
and deletes older "step_<N>" folders only, never other folders a user put there. A run holds an
exclusive lock on DIR (`lock`), so two runs cannot write one directory.

    >>> check_out_dir("w2v", resume=False, overwrite=False)  # refused if w2v holds a run
    PosixPath('w2v')
    >>> holds_table("w2v")  # after jaxembed train ... --out w2v: True, and load_table("w2v")
    False
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jaxembed.checks import ParameterError, naming
from jaxembed.export import save_vectors
from jaxembed.files import atomic_open, read_npy_rows, write_json
from jaxembed.vocab import Vocab

CHECKPOINTS = "checkpoints"
STEP_PREFIX = "step"  # checkpoint folders are step_<N>: orbax touches no other folder
STAGING = ".overwrite"  # an --overwrite run trains here; its files replace the old ones at the end
REPLACED = ".replaced"  # the old run files while they are being replaced
RUN_FILES = ("run.json", "vectors.txt", "vocab.txt", "table.npy", CHECKPOINTS)


def check_out_dir(out_dir: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Refuses an output directory that holds another run unless resuming or overwriting.

    Args:
      out_dir: the run's directory (created later, when training starts).
      resume: continue the run whose checkpoints are in out_dir.
      overwrite: delete the run files found there (only those) and start afresh.

    Returns:
      out_dir as a Path.
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise ParameterError(
            "pass either resume=True or overwrite=True, not both", "resume", "overwrite"
        )
    if out.exists() and not out.is_dir():
        raise naming(
            FileExistsError(f"{out} exists and is not a directory - choose another out_dir"),
            "out_dir",
        )
    if (out / CHECKPOINTS).is_symlink():
        raise naming(
            FileExistsError(
                f"{out / CHECKPOINTS} is a symbolic link - a run keeps its checkpoints in a "
                "folder of its own (old ones are deleted there); remove the link or choose "
                "another out_dir"
            ),
            "out_dir",
        )
    writable = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not os.access(writable, os.W_OK):
        raise naming(
            PermissionError(f"{writable} is not writable - choose another out_dir"), "out_dir"
        )
    # A run killed before its first checkpoint leaves an empty checkpoints/: no run to resume.
    found = [n for n in RUN_FILES if n != CHECKPOINTS and (out / n).exists()]
    found += [CHECKPOINTS] if checkpoint_steps(out) else []
    if resume:
        if not checkpoint_steps(out):
            raise naming(
                FileNotFoundError(
                    f"{out} holds no checkpoint to resume from - run without resume=True to start"
                ),
                "resume",
            )
    elif found and not overwrite:
        raise naming(
            FileExistsError(
                f"{out} already holds a run ({', '.join(found)}) - pass resume=True to continue "
                "it, overwrite=True to replace it, or choose another out_dir"
            ),
            "resume",
            "overwrite",
            "out_dir",
        )
    return out


def holds_run(out: Path) -> bool:
    """Whether `out` holds any run file."""
    return any((out / name).exists() for name in RUN_FILES)


def staging(out: Path) -> Path:
    """A fresh folder inside `out` where a run that will replace out's run is written."""
    path = out / STAGING
    if path.exists():  # what a killed --overwrite run left
        shutil.rmtree(path)
    path.mkdir()
    return path


def replace_run(new: Path, out: Path) -> None:
    """Replaces the run files of `out` with those of `new` (a `staging` folder), then tidies.

    The old files are moved aside first and deleted last; only the renames in between (no data
    written) could be cut by a kill.
    """
    old = out / REPLACED
    if old.exists():
        shutil.rmtree(old)
    old.mkdir()
    for name in RUN_FILES:
        if (out / name).exists():
            os.replace(out / name, old / name)
    for name in RUN_FILES:
        if (new / name).exists():
            os.replace(new / name, out / name)
    shutil.rmtree(old)
    shutil.rmtree(new)


def checkpoint_steps(out: str | os.PathLike) -> list[int]:
    """The steps of the checkpoints in `out`, oldest first."""
    directory = Path(out) / CHECKPOINTS
    if not directory.is_dir():
        return []
    prefix = STEP_PREFIX + "_"
    names = [p.name[len(prefix) :] for p in directory.iterdir() if p.name.startswith(prefix)]
    return sorted(int(n) for n in names if n.isdigit())


def saved_settings(out: str | os.PathLike) -> dict:
    """The settings stored with the newest checkpoint of the run in `out` (see loop.fit)."""
    steps = checkpoint_steps(out)
    if not steps:
        raise naming(
            FileNotFoundError(
                f"{out} holds no checkpoint to resume from - run without resume=True to start"
            ),
            "resume",
        )
    problems = []
    for step in reversed(steps):  # a damaged newest checkpoint: the run's settings are in each
        path = Path(out) / CHECKPOINTS / f"{STEP_PREFIX}_{step}" / "meta" / "metadata"
        try:
            return json.loads(path.read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append(f"{path}: {err}")
    raise ValueError(
        f"no readable checkpoint in {out} ({'; '.join(problems)}) - pass overwrite=True to "
        "start afresh"
    )


@contextlib.contextmanager
def lock(out: Path) -> Iterator[None]:
    """Holds an exclusive lock on the directory `out` (flock) while a run writes it."""
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise naming(
                FileExistsError(
                    f"{out} is in use by another jaxembed run - wait for it to finish, or "
                    "choose another out_dir"
                ),
                "out_dir",
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------------- checkpoints


class Checkpoints:
    """The orbax checkpoints of a run: the state and a JSON record of the loop's progress."""

    def __init__(self, out: Path, keep: int):
        import orbax.checkpoint as ocp

        # Orbax saves into "<step>.orbax-checkpoint-tmp-*" and renames it when complete; the
        # leftovers of a killed save are deleted when the next run opens the directory.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True, step_prefix=STEP_PREFIX
        )
        self.directory = (out / CHECKPOINTS).absolute()
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Saves `state` and `meta`, with checksums of the state's arrays in the meta."""
        import orbax.checkpoint as ocp

        meta = {**meta, "checksums": checksums(state)}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)

    def restore(self, target: Any) -> tuple[Any, dict]:
        """The newest intact checkpoint's state, laid out (shapes, shardings) as `target`, and meta.

        A checkpoint that cannot be read or whose arrays do not match their checksums is
        skipped with a warning, and the next older one is tried.
        """
        import jax
        import orbax.checkpoint as ocp

        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target
        )
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        )
        problems = []
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self._manager.restore(step, args=args)
                state, meta = restored["state"], dict(restored["meta"])
                if "checksums" in meta and meta.pop("checksums") != checksums(state):
                    raise ValueError("its arrays do not match their checksums")
            except Exception as err:  # orbax and tensorstore raise many kinds for damaged files
                problems.append(f"step {step}: {str(err).splitlines()[0][:200]}")
                warnings.warn(
                    f"checkpoint step {step} in {self.directory} is damaged ({problems[-1]}) - "
                    "trying an older one",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            if problems:  # set the damaged newer ones aside: this run will write those steps again
                for newer in (s for s in self._manager.all_steps() if s > step):
                    shutil.rmtree(self.directory / f"{STEP_PREFIX}_{newer}", ignore_errors=True)
                self._manager.reload()
            return state, meta
        raise ValueError(
            f"no intact checkpoint in {self.directory} ({'; '.join(problems) or 'none found'}) "
            "- pass overwrite=True to start afresh"
        )

    def close(self) -> None:
        """Waits for a save in flight, then releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


def checksums(state: Any) -> list[list[int]]:
    """Two 32-bit checksums per array of `state`: its words' sum, and their sum weighted by position.

    Any single flipped bit changes the plain sum; the weighted sum also catches moved words. Each
    process sums the shards it holds, where they are (on a CPU, in place: no copy of a table),
    and only two numbers per array travel between processes.
    """
    import jax

    sums_Nx2 = np.array([_local_checksums(x) for x in jax.tree.leaves(state)], np.uint32)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        sums_Nx2 = np.asarray(multihost_utils.process_allgather(sums_Nx2)).sum(0, dtype=np.uint32)
    return sums_Nx2.reshape(-1, 2).tolist()


def _local_checksums(x: Any) -> tuple[int, int]:
    """This process's part of `checksums` for one array: (sum w, sum w * (i + 1)) modulo 2^32 over
    its words w at flat positions i, each shard counted once (replica 0).

    A shard's weighted sum is base * sum w + sum_k stride_k * sum_j j * m_kj, where base is 1 plus
    the shard's first flat position and m_kj the sum of the words at index j of axis k: marginal
    sums only, taken a block of rows at a time, so no temporary is larger than a block.
    (XLA:CPU copies a whole array to reinterpret its bits, twice the tables at every checkpoint.)
    """
    if not hasattr(x, "addressable_shards"):
        x = np.asarray(x)
        pieces = [((slice(None),) * x.ndim, x)]
    else:
        pieces = [(s.index, s.data) for s in x.addressable_shards if s.replica_id == 0]
    shape = x.shape
    strides = [int(np.prod(shape[k + 1 :], dtype=np.int64)) for k in range(len(shape))]
    total, weighted = np.uint32(0), np.uint32(0)
    with np.errstate(over="ignore"):
        for index, data in pieces:
            local = np.asarray(data)  # on a CPU, the shard's own buffer
            if local.size == 0:
                continue
            starts = [sl.indices(n)[0] for sl, n in zip(index, shape, strict=True)]
            first = 1 + sum(st * sd for st, sd in zip(starts, strides, strict=True))
            if local.ndim == 0:
                local, block_strides = local.reshape(1), [1]
            else:
                block_strides = strides
            rows = max(1, (1 << 20) // max(1, local[0].size))
            for r in range(0, local.shape[0], rows):
                block = _words(local[r : r + rows])
                block_sum = block.sum(dtype=np.uint32)
                total += block_sum
                weighted += np.uint32((first + r * block_strides[0]) % (1 << 32)) * block_sum
                for k, stride in enumerate(block_strides):
                    others = tuple(a for a in range(block.ndim) if a != k)
                    m_j = block.sum(axis=others, dtype=np.uint32)
                    j = np.arange(m_j.size, dtype=np.uint32)
                    weighted += np.uint32(stride % (1 << 32)) * (j * m_j).sum(dtype=np.uint32)
    return int(total), int(weighted)


def _words(block: np.ndarray) -> np.ndarray:
    """The block as uint32 words: its bits where its items are 4 or 2 bytes (bfloat16 tables),
    else its values."""
    if block.dtype.itemsize == 4:
        return np.ascontiguousarray(block).view(np.uint32)
    if block.dtype.itemsize == 2:
        return np.ascontiguousarray(block).view(np.uint16).astype(np.uint32)
    return block.astype(np.uint32)


# ---------------------------------------------------------------------------- outputs


def write_outputs(out: Path, table_VxD: np.ndarray, vocab: Vocab, summary: dict) -> None:
    """vectors.txt, vocab.txt, table.npy, then run.json (last: it marks a finished run)."""
    table_VxD = np.asarray(table_VxD, np.float32)
    save_vectors(table_VxD, vocab, out / "vectors.txt", format="word2vec")
    vocab.save(out / "vocab.txt")
    with atomic_open(out / "table.npy") as f:
        np.save(f, table_VxD)
    write_json(out / "run.json", summary, indent=1)
    for name in ("vectors.txt", "vocab.txt", "table.npy", "run.json"):  # what killed runs left
        for leftover in out.glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def read_summary(out: str | os.PathLike) -> dict:
    """run.json of a finished run."""
    return json.loads((Path(out) / "run.json").read_text())


def holds_table(path: str | os.PathLike) -> bool:
    """Whether `path` is a run directory with table.npy and vocab.txt."""
    return (Path(path) / "table.npy").is_file() and (Path(path) / "vocab.txt").is_file()


def load_table(path: str | os.PathLike, limit: int | None = None) -> tuple[np.ndarray, Vocab]:
    """The learned table and vocabulary of a run directory (its table.npy + vocab.txt).

    Args:
      path: the run directory.
      limit: keep only the first `limit` rows (the most frequent words); None keeps all.

    Returns:
      (table_VxD float32, Vocab with the corpus counts).
    """
    path = Path(path)
    vocab = Vocab.load(path / "vocab.txt")
    try:
        shape = np.load(path / "table.npy", mmap_mode="r").shape
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path / 'table.npy'} is damaged or truncated ({err}) - train again, or load "
            f"{path / 'vectors.txt'} instead"
        ) from err
    if len(shape) != 2 or shape[0] != len(vocab):
        raise ValueError(
            f"{path}: table.npy has shape {shape} but vocab.txt has {len(vocab)} tokens "
            "- they come from different runs; train again or restore the matching pair"
        )
    n = len(vocab) if limit is None else min(limit, len(vocab))
    head = Vocab(vocab.index_to_key[:n], vocab.counts[:n], vocab.specials[:n])
    return read_npy_rows(path / "table.npy", n), head
