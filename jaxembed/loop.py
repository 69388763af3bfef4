"""The training run: corpus -> batches -> jitted steps -> checkpoints -> vectors on disk.

`fit` drives `jaxembed.train`'s step over `jaxembed.data`'s batch stream for a number of epochs:

- Steps run `steps_per_call` at a time (one `jax.lax.scan` per jitted call); an epoch's last few
  batches run one by one. Calls line up with the start of each epoch, so a resumed run makes
  exactly the calls an uninterrupted one makes.
- The loss is summed on the host in float64 (gensim sums it in float32, which stops growing
  once the sum is large) and shown with words/s and time left in a tqdm bar.
- Checkpoints: orbax-checkpoint, in `out_dir/checkpoints/<step>`, every `checkpoint_every`
  steps (at the end of a call) and at the end; the last `keep_checkpoints` are kept. Orbax
  writes each into a temporary directory and renames it when complete (its default
  AtomicRenameTemporaryPath), so a killed run never leaves a half-written checkpoint. A checkpoint holds the state and the batch stream's
  position (epoch, batch), so `resume=True` continues a killed run and ends with the same table
  as an uninterrupted run with the same seed.
- A NaN or infinite loss stops the run with an error; the last checkpoint stays the last good one.
- At the end, `out_dir` gets `vectors.txt` (word2vec text format), `vocab.txt`, `table.npy`
  (the input table, float32) and `run.json` (configuration and metrics), each written atomically;
  `run.json` goes last and marks a finished run.

    >>> fit(["corpus.txt.xz"], "w2v", TrainConfig(dim=200), FitConfig(sample=1e-4))
    {'words_per_second': ..., 'loss': ..., 'vocab_size': ..., ...}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxembed import data, io
from jaxembed import mesh as jm
from jaxembed import train as tr
from jaxembed.corpus import Corpus, read_corpus
from jaxembed.files import atomic_open

RUN_FILES = ("run.json", "vectors.txt", "vocab.txt", "table.npy", "checkpoints")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """The data and loop side of a run (the model and optimiser are in train.TrainConfig)."""

    window: int = 5  # word2vec: largest distance between centre and context word
    sample: float = 1e-3  # word2vec: frequent-word subsampling threshold (gensim's); 0 = off
    min_count: int = 5  # drop words seen fewer times
    max_vocab: int | None = None  # keep at most this many most frequent words
    epochs: int = 5  # passes over the corpus
    batch_size: int = 1024  # examples per step: pairs (skip-gram), centres (CBOW), sequences
    steps_per_call: int = 16  # steps scanned in one jitted call
    checkpoint_every: int = 0  # steps between checkpoints (rounded up to whole calls); 0 = end only
    keep_checkpoints: int = 2  # checkpoints kept on disk, newest first
    max_steps: int | None = None  # stop (with a checkpoint) after this many steps; resume later
    mesh: tuple[int, int] | None = None  # (data, model) devices; None: one device, no sharding
    split: str = "rows"  # how "model" devices split the tables: "rows" or "columns" (CPU: faster)

    def __post_init__(self) -> None:
        for name in ("window", "min_count", "epochs", "batch_size", "steps_per_call"):
            _check_positive(name, getattr(self, name))
        for name in ("max_vocab", "max_steps"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        for name in ("checkpoint_every",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        _check_positive("keep_checkpoints", self.keep_checkpoints)
        if not 0 <= self.sample < 1:
            raise ValueError(f"sample must be in [0, 1); got {self.sample!r} (0 turns it off)")
        if self.split not in jm.SPLITS:
            raise ValueError(f"split must be one of {jm.SPLITS}; got {self.split!r}")
        if self.mesh is not None:
            if len(self.mesh) != 2:
                raise ValueError(f"mesh must be (data, model); got {self.mesh!r}")
            for value in self.mesh:
                _check_positive("mesh sizes", value)


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{name} must be a positive integer; got {value!r} ({flag})")


# ---------------------------------------------------------------------------- output directory


def check_out_dir(out_dir: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Refuses an output directory that holds another run unless resuming or overwriting.

    Args:
      out_dir: the run's directory (created later, when training starts).
      resume: continue the run whose checkpoints are in out_dir.
      overwrite: delete the run files found there (only those) and start afresh.

    Returns:
      out_dir as a Path.

    Example:
      >>> check_out_dir("w2v", resume=False, overwrite=False)  # raises if w2v holds a run
      PosixPath('w2v')
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise ValueError("pass either --resume or --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory - choose another --out")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not _checkpoint_steps(out):
            raise FileNotFoundError(
                f"{out} holds no checkpoint to resume from - run without --resume to start"
            )
    elif found and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(found)}) - pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    return out


def _clear_run(out: Path) -> None:
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _checkpoint_steps(out: Path) -> list[int]:
    directory = out / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


# ---------------------------------------------------------------------------- checkpoints


def _manager(out: Path, keep: int):
    import orbax.checkpoint as ocp

    # Orbax saves into "<step>.orbax-checkpoint-tmp-*" and renames it when complete; the
    # leftovers of a killed save are deleted when the next run opens the directory.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager((out / "checkpoints").absolute(), options=options)


def _save(manager, state: tr.TrainState, meta: dict) -> None:
    import orbax.checkpoint as ocp

    step = int(meta["step"])
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    manager.save(step, args=args, force=True)


def _restore(manager, target: tr.TrainState) -> tuple[tr.TrainState, dict]:
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target
    )
    step = manager.latest_step()
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    restored = manager.restore(step, args=args)
    return restored["state"], dict(restored["meta"])


# ---------------------------------------------------------------------------- the run


def _batch_stream(corpus, train: tr.TrainConfig, fit: FitConfig, epoch: int, start_batch: int):
    common = dict(seed=train.seed, epoch=epoch, epochs=fit.epochs, start_batch=start_batch)
    if train.objective == "skipgram":
        return data.skipgram_batches(corpus, fit.window, fit.sample, fit.batch_size, **common)
    if train.objective == "cbow":
        return data.cbow_batches(corpus, fit.window, fit.sample, fit.batch_size, **common)
    return data.next_token_batches(corpus, train.context_length, fit.batch_size, **common)


def _calls(batches: Iterator[dict], size: int) -> Iterator[list[dict]]:
    """Groups of `size` batches; the epoch's remainder comes as groups of one."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    for batch in group:
        yield [batch]


def _stack(group: list[dict]) -> dict:
    keys = [k for k, v in group[0].items() if isinstance(v, np.ndarray | np.generic)]
    return {k: np.stack([b[k] for b in group]) for k in keys}


def fit(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    train: tr.TrainConfig,
    config: FitConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Trains a table on text files and writes it to `out_dir` (see the module docstring).

    Args:
      paths: corpus files (plain, .xz, .gz, .bz2), one sentence a line.
      out_dir: the run's directory; refused if it holds another run (see `check_out_dir`).
      train: the model and optimiser configuration.
      config: the data and loop configuration.
      resume: continue from the newest checkpoint in out_dir (same configuration required).
      overwrite: replace a run found in out_dir.
      progress: show a tqdm progress bar.

    Returns:
      The run's summary, also written to out_dir/run.json; {"finished": False, ...} when
      `config.max_steps` stopped it early (continue with resume=True).

    Example:
      >>> summary = fit(["corpus.txt"], "w2v", TrainConfig(dim=50), FitConfig(epochs=1))
      >>> summary["vocab_size"], summary["loss"] < 4.0
      (7127, True)
    """
    started = time.perf_counter()
    out = check_out_dir(out_dir, resume, overwrite)
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
    corpus = read_corpus(paths, config.min_count, config.max_vocab)
    vocab_size = len(corpus.vocab)
    _batch_stream(corpus, train, config, 0, 0).close()  # checks the settings fit the corpus
    settings = {"corpus": [os.path.abspath(p) for p in paths]}
    settings |= {"train": dataclasses.asdict(train), "fit": _resumable(config)}
    mesh = None if config.mesh is None else jm.make_mesh(*config.mesh)
    rows = jm.padded_vocab_size(vocab_size)  # extra rows: no word, never drawn as noise
    state = tr.init_state(train, rows)
    if mesh is not None:
        state = jm.shard_state(state, mesh, rows, config.split)
    if overwrite:
        _clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    manager = _manager(out, config.keep_checkpoints)
    meta = {"step": 0, "epoch": 0, "batch": 0, "words": 0, "loss_sum": 0.0, "count": 0.0}
    meta |= {"epoch_losses": [], "train_seconds": 0.0, "settings": settings}
    if resume:
        state, meta = _restore(manager, state)
        _check_same_settings(meta["settings"], settings, out)
    noise = None
    if train.objective != "next-token":
        noise = np.zeros(rows, np.float32)
        noise[:vocab_size] = data.noise_distribution(corpus.vocab.counts)
    steps = {
        size: tr.make_train_step(train, noise, mesh=mesh, split=config.split, stacked=size > 1)
        for size in {1, config.steps_per_call}
    }
    total_words = corpus.n_raw_words * config.epochs
    bar = _progress_bar(total_words, meta["words"], progress and jax.process_index() == 0)
    last_checkpoint, stopped = meta["step"], False
    train_start = time.perf_counter() - meta["train_seconds"]
    meta.setdefault("epoch_sum", 0.0)
    meta.setdefault("epoch_count", 0.0)

    def account(pending) -> None:
        """Adds a finished call's metrics to `meta` (waits for it); stops on a NaN loss."""
        metrics, group = pending
        loss_sum = float(np.sum(np.asarray(metrics["loss_sum"], np.float64)))
        count = float(np.sum(np.asarray(metrics["count"], np.float64)))
        if not math.isfinite(loss_sum):
            raise ValueError(
                f"the loss became {loss_sum} at step {meta['step'] + len(group)} (epoch "
                f"{meta['epoch'] + 1}) - lower --lr (now {train.lr}); the last good checkpoint "
                f"is step {last_checkpoint} in {out / 'checkpoints'} (--resume continues from it)"
            )
        words = sum(int(b["words"]) for b in group)
        meta["step"] += len(group)
        meta["batch"] += len(group)
        meta["words"] += words
        for name, value in (("loss_sum", loss_sum), ("count", count)):
            meta[name] += value
            meta["epoch_" + name.split("_")[-1]] += value
        bar.update(words)
        bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4f}", refresh=False)

    try:
        while meta["epoch"] < config.epochs and not stopped:
            stream = _batch_stream(corpus, train, config, meta["epoch"], meta["batch"])
            batches = data.prefetch(stream, size=2 * config.steps_per_call)
            pending = None  # the call in flight: its metrics are read after the next is queued
            for group in _calls(batches, config.steps_per_call):
                batch = _stack(group) if len(group) > 1 else group[0]
                if mesh is not None:
                    batch = jm.shard_batch(batch, mesh, stacked=len(group) > 1)
                state, metrics = steps[len(group)](state, batch)
                if pending is not None:
                    account(pending)
                pending = (metrics, group)
                done = meta["step"] + len(group)
                stopped = config.max_steps is not None and done >= config.max_steps
                if stopped or (
                    config.checkpoint_every and done - last_checkpoint >= config.checkpoint_every
                ):
                    account(pending)
                    pending = None
                    meta["train_seconds"] = time.perf_counter() - train_start
                    _checkpoint(manager, state, meta)
                    last_checkpoint = meta["step"]
                if stopped:
                    break
            else:
                if pending is not None:
                    account(pending)
                meta["epoch_losses"].append(meta["epoch_sum"] / max(meta["epoch_count"], 1.0))
                meta |= {
                    "epoch": meta["epoch"] + 1,
                    "batch": 0,
                    "epoch_sum": 0.0,
                    "epoch_count": 0.0,
                }
        meta["train_seconds"] = time.perf_counter() - train_start
        if last_checkpoint != meta["step"] or manager.latest_step() is None:
            _checkpoint(manager, state, meta)
        manager.wait_until_finished()
    finally:
        bar.close()
        manager.close()
    if stopped:
        return {**_summary(meta, corpus, started), "finished": False}
    table_VxD = jm.to_host(tr.input_table(state))[:vocab_size]
    if jax.process_index() == 0:
        _write_outputs(out, table_VxD, corpus.vocab, meta, corpus, started)
    return json.loads((out / "run.json").read_text()) if jax.process_index() == 0 else {}


def _checkpoint(manager, state: tr.TrainState, meta: dict) -> None:
    table = tr.input_table(state)
    if not bool(jax.numpy.isfinite(table).all()):
        raise ValueError(
            f"the table holds NaN or infinite values at step {meta['step']} - lower --lr; the "
            "last good checkpoint is kept"
        )
    _save(manager, state, meta)


def _resumable(fit: FitConfig) -> dict:
    """The settings a resumed run must share (not max_steps or the checkpoint schedule)."""
    settings = dataclasses.asdict(fit)
    for name in ("max_steps", "checkpoint_every", "keep_checkpoints", "mesh", "split"):
        settings.pop(name)
    return settings


def _check_same_settings(saved: dict, current: dict, out: Path) -> None:
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    if saved == current:
        return
    diffs = []
    for group in ("train", "fit"):
        for name in sorted(set(saved.get(group, {})) | set(current.get(group, {}))):
            a, b = saved.get(group, {}).get(name), current.get(group, {}).get(name)
            if a != b:
                diffs.append(f"{name}: {a!r} in the checkpoint, {b!r} now")
    if saved.get("corpus") != current.get("corpus"):
        diffs.append(
            f"corpus: {saved.get('corpus')} in the checkpoint, {current.get('corpus')} now"
        )
    raise ValueError(
        f"{out} holds a run with other settings ({'; '.join(diffs)}) - resume with the same "
        "settings, or pass --overwrite to start afresh"
    )


def _summary(meta: dict, corpus: Corpus, started: float) -> dict:
    seconds = meta["train_seconds"]
    return {
        "finished": True,
        "steps": meta["step"],
        "epochs_done": meta["epoch"],
        "words": meta["words"],
        "loss": meta["loss_sum"] / max(meta["count"], 1.0),
        "epoch_losses": meta["epoch_losses"],
        "train_seconds": seconds,
        "words_per_second": meta["words"] / seconds if seconds > 0 else None,
        "wall_seconds": time.perf_counter() - started,
        "vocab_size": len(corpus.vocab),
        "corpus_words": corpus.n_raw_words,
        "settings": meta["settings"],
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
    }


def _write_outputs(out: Path, table_VxD, vocab, meta: dict, corpus, started: float) -> None:
    """vectors.txt, vocab.txt, table.npy, then run.json (last: it marks a finished run)."""
    table_VxD = np.asarray(table_VxD, np.float32)
    io.save_vectors(table_VxD, vocab, out / "vectors.txt", format="word2vec")
    vocab.save(out / "vocab.txt")
    with atomic_open(out / "table.npy") as f:
        np.save(f, table_VxD)
    with atomic_open(out / "run.json", "w") as f:
        json.dump(_summary(meta, corpus, started), f, indent=1)


def _progress_bar(total_words: int, done_words: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total_words,
        initial=done_words,
        unit="word",
        unit_scale=True,
        dynamic_ncols=True,
        smoothing=0.1,
        disable=not enabled,
    )
