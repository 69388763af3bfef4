"""The training run: corpus -> batches -> jitted steps -> checkpoints -> vectors on disk.

`fit` drives `jaxembed.train`'s step over the objective's batch stream for a number of epochs:

- Batches come from the objective's host stream (`jaxembed.data`, prefetched in a thread) or,
  with `FitConfig.batches="device"` (word2vec; the default on a GPU or TPU), are made by jitted
  code on the device (`jaxembed.device_batches`).
- Steps run `steps_per_call` at a time (one `jax.lax.scan` per jitted call); an epoch's last few
  batches run one by one. Calls line up with the start of each epoch, so a resumed run makes
  exactly the calls an uninterrupted one makes.
- The loss is summed on the host in float64 (gensim sums it in float32, which stops growing
  once the sum is large) and shown with words/s and time left in a tqdm bar.
- Checkpoints (`jaxembed.rundir`, which owns the run directory's layout) every
  `checkpoint_every` steps (at the end of a call) and at the end; the last `keep_checkpoints`
  are kept. A checkpoint holds the state and the loop's `Progress`, so `resume=True` continues
  a killed run and ends with the same table as an uninterrupted run with the same seed.
- A NaN or infinite loss stops the run with an error; the last checkpoint stays the last good one.
- At the end, `out_dir` gets vectors.txt, vocab.txt, table.npy and run.json (see `jaxembed.rundir`).

    >>> from jaxembed.lecture import default_corpus
    >>> train_config, fit_config = tr.TrainConfig(dim=16), FitConfig(epochs=1, batch_size=256)
    >>> result = fit([default_corpus()], "w2v", train_config, fit_config, progress=False)
    >>> result.table_VxD.shape, result.summary["finished"], sorted(p.name for p in Path("w2v").iterdir())
    ((1762, 16), True, ['checkpoints', 'run.json', 'table.npy', 'vectors.txt', 'vocab.txt'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxembed import data, rundir
from jaxembed import mesh as jm
from jaxembed import objectives as ob
from jaxembed import train as tr
from jaxembed.checks import (
    ParameterError,
    non_negative_int,
    one_of,
    optional_positive_int,
    positive_int,
)
from jaxembed.corpus import (
    TOKENIZERS,
    Corpus,
    corpus_from_sentences,
    corpus_paths,
    read_corpus,
)
from jaxembed.device_batches import CHUNK_TOKENS as _DEVICE_CHUNK_TOKENS
from jaxembed.device_batches import DeviceBatches
from jaxembed.vocab import Vocab

BATCHES = ("auto", "host", "device")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """The data and loop side of a run (the model and optimiser are in train.TrainConfig)."""

    window: int = 5  # word2vec: largest distance between centre and context word
    sample: float = 1e-3  # word2vec: frequent-word subsampling threshold (gensim's); 0 = off
    min_count: int = 5  # drop words seen fewer times (gpt2: their rows stay, untrained)
    max_vocab: int | None = None  # keep at most this many most frequent words
    tokenizer: str = "whitespace"  # "whitespace", "words" or "gpt2" (jaxembed.corpus.TOKENIZERS)
    lowercase: bool = False  # fold case before counting (not with gpt2)
    end_of_text: bool = False  # gpt2: end each line (a document) with <|endoftext|>
    cache_dir: str | None = None  # keep the corpus's IDs in this folder, memory-mapped; a later
    # run on the same files with the same token settings loads them instead of reading the text
    stride: int | None = None  # next-token: step between window starts; None: context_length
    epochs: int = 5  # passes over the corpus
    batch_size: int | None = None  # examples per step (pairs, centres, sequences)
    # None: the objective's on a CPU (4,096 pairs, 512 CBOW centres), larger on a GPU or TPU
    # (65,536 pairs, 4,096 centres: `for_objective`); a resumed run keeps the value it started with
    steps_per_call: int | None = None  # steps scanned in one jitted call; None: 16 on a CPU
    # (CBOW 64), 16 (CBOW 64, next-token 256) on a GPU or TPU, where the host never waits inside
    # a call; a resumed run keeps the value it was started with
    checkpoint_every: int = 0  # steps between checkpoints (rounded up to whole calls); 0 = end only
    keep_checkpoints: int = 2  # checkpoints kept on disk, newest first
    max_steps: int | None = None  # stop (with a checkpoint) after this many steps; resume later
    batches: str = "auto"  # word2vec: "host" (numpy thread), "device" (jitted); auto: by backend
    shuffle_words: int | None = None  # word2vec: each batch is drawn from a chunk of this many
    # corpus words, shuffled; None: `data.shuffle_words` (1M words on the host, 4M on the
    # device, 64 x batch_size where more, up to 16M); a resumed run keeps the value it started with
    mesh: tuple[int, int] | None = None  # (data, model) devices; None: one device, no sharding
    split: str = "rows"  # how "model" devices split the tables: "rows" or "columns" (CPU: faster)

    def __post_init__(self) -> None:
        for name in ("window", "min_count", "epochs", "keep_checkpoints"):
            positive_int(name, getattr(self, name))
        for name in (
            "max_vocab",
            "max_steps",
            "batch_size",
            "stride",
            "steps_per_call",
            "shuffle_words",
        ):
            optional_positive_int(name, getattr(self, name))
        non_negative_int("checkpoint_every", self.checkpoint_every)
        if not 0 <= self.sample < 1:
            raise ParameterError(
                f"sample must be in [0, 1); got {self.sample!r} (0 turns it off)", "sample"
            )
        one_of("split", self.split, jm.SPLITS)
        one_of("tokenizer", self.tokenizer, TOKENIZERS)
        one_of("batches", self.batches, BATCHES)
        if self.mesh is not None:
            if len(self.mesh) != 2:
                raise ParameterError(f"mesh must be (data, model); got {self.mesh!r}", "mesh")
            for value in self.mesh:
                positive_int("mesh sizes", value)

    def for_objective(self, objective: str, backend: str | None = None) -> FitConfig:
        """This configuration with the defaults that depend on the objective and the backend
        filled in: the batch size, steps per call, and where batches are made ("auto": on the
        device for word2vec on a GPU or TPU, else on the host).

        On a GPU or TPU word2vec takes `Objective.accelerator_batch_size` (65,536 skip-gram
        pairs, 4,096 CBOW centres: `TrainConfig.row_scale="auto"` then takes newton steps) and
        `accelerator_steps_per_call`; on a CPU the batch sizes validated against gensim.

        Args:
          backend: "cpu", "gpu" or "tpu"; None: `jax.default_backend()`.
        """
        config, record = self, ob.get(objective)
        accelerator = (backend or jax.default_backend()) in ("gpu", "tpu")
        if config.batch_size is None:
            size = record.accelerator_batch_size if accelerator else None
            config = dataclasses.replace(config, batch_size=size or record.batch_size)
        if config.steps_per_call is None:
            calls = record.accelerator_steps_per_call if accelerator else record.cpu_steps_per_call
            config = dataclasses.replace(config, steps_per_call=calls)
        if config.batches == "auto":
            device = record.negatives and accelerator
            config = dataclasses.replace(config, batches="device" if device else "host")
        if config.shuffle_words is None and record.negatives:
            words = data.shuffle_words(config.batch_size, _pipeline_chunk(config.batches))
            config = dataclasses.replace(config, shuffle_words=words)
        return config


@dataclasses.dataclass
class Progress:
    """Where a run stands; saved with each checkpoint (as JSON) and restored on resume."""

    step: int = 0  # steps taken
    epoch: int = 0  # epochs finished
    batch: int = 0  # batches done in the current epoch
    words: int = 0  # raw corpus words covered
    loss_sum: float = 0.0  # summed loss and pair/token count of the whole run
    count: float = 0.0
    epoch_sum: float = 0.0  # the same for the current epoch
    epoch_count: float = 0.0
    epoch_losses: list[float] = dataclasses.field(default_factory=list)  # mean loss per epoch
    train_seconds: float = 0.0
    settings: dict = dataclasses.field(default_factory=dict)  # what a resumed run must share

    def add(self, steps: int, words: int, loss_sum: float, count: float) -> None:
        self.step += steps
        self.batch += steps
        self.words += words
        self.loss_sum += loss_sum
        self.count += count
        self.epoch_sum += loss_sum
        self.epoch_count += count

    def end_epoch(self) -> None:
        self.epoch_losses.append(self.epoch_sum / max(self.epoch_count, 1.0))
        self.epoch, self.batch, self.epoch_sum, self.epoch_count = self.epoch + 1, 0, 0.0, 0.0


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` hands back: the final state, the learned table, its vocabulary, the summary."""

    state: tr.TrainState  # the final TrainState (sharded as it was trained)
    table_VxD: np.ndarray  # the learned input table, one row per vocabulary word (host copy)
    vocab: Vocab  # the corpus vocabulary: row i is vocab.index_to_key[i]
    summary: dict  # the run's summary, as in run.json; summary["finished"] is False after max_steps
    train_config: tr.TrainConfig  # the configurations as run (defaults filled in)
    fit_config: FitConfig

    def initial_table(self) -> np.ndarray:
        """The random table training started from (the same rows `fit` allocated)."""
        rows = jm.padded_vocab_size(len(self.vocab))
        state = tr.init_state(self.train_config, rows)
        return np.asarray(tr.input_table(state), np.float32)[: len(self.vocab)]


def fit(
    paths: Sequence[str | os.PathLike] | Corpus | Iterable[Sequence[str]],
    out_dir: str | os.PathLike,
    train_config: tr.TrainConfig,
    fit_config: FitConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> FitResult:
    """Trains a table on text files and writes it to `out_dir` (see the module docstring).

    Args:
      paths: corpus files (plain, .xz, .gz, .bz2), one sentence a line, or a name of
        `jaxembed.corpus.NAMED_CORPORA` ("lee"); `fit_config.tokenizer` says how lines become
        tokens. Or a corpus in memory: a `Corpus` (`corpus_from_ids` for token IDs and their
        Vocab) or sentences as lists of tokens (gensim's `sentences=`), with `fit_config`'s
        min_count and max_vocab. Progress, checkpoints, resume and outputs are the same.
      out_dir: the run's directory; refused if it holds another run (`rundir.check_out_dir`).
      train_config: the model and optimiser configuration.
      fit_config: the data and loop configuration.
      resume: continue from the newest checkpoint in out_dir (same configuration required).
      overwrite: replace a run found in out_dir.
      progress: show a tqdm progress bar.

    Returns:
      A FitResult; its summary is also written to out_dir/run.json unless `max_steps` stopped
      the run early (summary["finished"] False: continue with resume=True).
    """
    started = time.perf_counter()
    out = rundir.check_out_dir(out_dir, resume, overwrite)
    objective = ob.get(train_config.objective)
    if resume:  # the run's own values of the settings left unset, if an older default
        saved = rundir.saved_settings(out).get("fit", {})
        for name in ("steps_per_call", "batch_size", "shuffle_words"):
            if getattr(fit_config, name) is None:
                fit_config = dataclasses.replace(fit_config, **{name: saved.get(name)})
        if (
            fit_config.shuffle_words is None
            and objective.negatives
            and "shuffle_words" not in saved
        ):
            # a run saved before the setting: its pipeline's fixed chunk
            old = _pipeline_chunk(saved.get("batches", "host"))
            fit_config = dataclasses.replace(fit_config, shuffle_words=old)
    config = fit_config.for_objective(train_config.objective)
    on_host_0 = progress and jax.process_index() == 0
    paths, corpus = _corpus(paths, config, on_host_0)
    data.release_free_memory()  # reading leaves ~75 MiB of freed heap (11M words) that glibc keeps
    objective.batches(corpus, train_config, config, 0, 0).close()  # the settings fit the corpus?
    mesh = None if config.mesh is None else jm.make_mesh(*config.mesh)
    device_batches = None
    if config.batches == "device":
        device_batches = _device_batches(corpus, train_config, config, mesh)
    rows = jm.padded_vocab_size(len(corpus.vocab))  # extra rows: no word, never drawn as noise
    state = tr.init_state(train_config, rows)
    if mesh is not None:
        state = jm.shard_state(state, mesh, config.split)
    noise_probs_V = None
    if objective.negatives:
        noise_probs_V = np.zeros(rows, np.float32)
        noise_probs_V[: len(corpus.vocab)] = data.noise_distribution(
            corpus.vocab.counts, train_config.ns_exponent
        )
    steps = {
        size: tr.make_train_step(
            train_config, noise_probs_V, mesh=mesh, split=config.split, stacked=size > 1
        )
        for size in {1, config.steps_per_call}
    }
    data.release_free_memory()
    out.mkdir(parents=True, exist_ok=True)
    with rundir.lock(out):
        rundir.check_out_dir(out, resume, overwrite)  # again, now that no other run can start
        # --overwrite trains beside the old run, which is replaced only when this one succeeds.
        work = rundir.staging(out) if overwrite and rundir.holds_run(out) else out
        checkpoints = rundir.Checkpoints(work, config.keep_checkpoints)
        run = Progress(settings=_settings(paths, corpus, train_config, config))
        bar, failed = None, True
        try:
            if resume:  # settings first: a state of other shapes would not restore
                _check_same_settings(rundir.saved_settings(out), run.settings, out, train_config)
                state, saved = checkpoints.restore(state)
                run = Progress(**saved)
            unit = "token" if config.tokenizer == "gpt2" else "word"
            bar = _progress_bar(corpus.n_raw_words * config.epochs, run.words, on_host_0, unit)
            state, finished, first_call = _train(
                state,
                run,
                steps,
                checkpoints,
                corpus,
                train_config,
                config,
                mesh,
                bar,
                work,
                device_batches,
            )
            failed = False
        finally:
            if bar is not None:
                bar.close()
            checkpoints.close()
            if failed and work != out:  # the old run stays as it was
                shutil.rmtree(work, ignore_errors=True)
        data.release_free_memory()  # the last checkpoint's host copies
        # float32, whatever the table's own dtype (TrainConfig.table_dtype)
        table_VxD = np.asarray(jm.to_host(tr.input_table(state)), np.float32)[: len(corpus.vocab)]
        summary = _summary(run, corpus, started) | {"finished": finished, **first_call}
        if jax.process_index() == 0:
            if finished:
                rundir.write_outputs(work, table_VxD, corpus.vocab, summary)
            if work != out:
                rundir.replace_run(work, out)
    return FitResult(state, table_VxD, corpus.vocab, summary, train_config, config)


def _corpus(source, config: FitConfig, progress: bool) -> tuple[list[str], Corpus]:
    """(the files read, the Corpus) of what `fit` was given: files, a Corpus, or sentences."""
    if isinstance(source, Corpus):
        return [], source
    if isinstance(source, str | os.PathLike):
        source = [source]
    if not isinstance(source, Sequence) or (
        source and not isinstance(source[0], str | os.PathLike)
    ):
        if config.tokenizer != "whitespace" or config.lowercase or config.end_of_text:
            raise ParameterError(
                "tokenizer, lowercase and end_of_text apply to files; sentences in memory are "
                "tokens already - tokenize them yourself, or write them to a file",
                "tokenizer",
            )
        if config.cache_dir is not None:
            raise ParameterError(
                "cache_dir keeps the IDs of corpus files; sentences in memory have none - "
                "pass cache_dir=None, or save them with jaxembed.corpus.save_corpus",
                "cache_dir",
            )
        return [], corpus_from_sentences(source, config.min_count, config.max_vocab)
    paths = corpus_paths(source)
    corpus = read_corpus(
        paths,
        config.min_count,
        config.max_vocab,
        tokenizer=config.tokenizer,
        lowercase=config.lowercase,
        end_of_text=config.end_of_text,
        cache_dir=config.cache_dir,
        progress=progress,
    )
    return paths, corpus


def _device_batches(corpus, train_config, config, mesh):
    """`jaxembed.device_batches.DeviceBatches` for this run (one process; split over "data")."""
    if jax.process_count() > 1:
        raise ParameterError(
            "batches='device' runs in one process (its devices may form a mesh); with "
            f"{jax.process_count()} processes use batches='host'",
            "batches",
        )
    if mesh is not None and config.batch_size % mesh.shape["data"]:
        raise ParameterError(
            f"batch_size {config.batch_size} must be a multiple of the mesh's "
            f"{mesh.shape['data']} data devices - change batch_size",
            "batch_size",
        )
    return DeviceBatches(
        corpus,
        train_config.objective,
        config.window,
        config.sample,
        config.batch_size,
        train_config.seed,
        config.steps_per_call,
        chunk_tokens=config.shuffle_words,
        mesh=mesh,
    )


def _host_calls(stream, config, mesh) -> Iterator[tuple[dict, int, list[int]]]:
    """The host pipeline's calls: (batch, steps, raw words per step), prefetched in a thread."""
    batches = data.prefetch(stream, size=2 * config.steps_per_call)
    try:
        for group in _calls(batches, config.steps_per_call):
            batch = _stack(group) if len(group) > 1 else group[0]
            if mesh is not None:
                batch = jm.shard_batch(batch, mesh, stacked=len(group) > 1)
            yield batch, len(group), [int(b["words"]) for b in group]
    finally:
        batches.close()


def _train(
    state, run, steps, checkpoints, corpus, train_config, config, mesh, bar, out, device_batches
):
    """The epochs of `fit`: calls of steps, metrics read one call late, checkpoints.

    Returns (state, finished, this process's first call): `first_call_seconds` (compiling the
    step and the first call, which the words/s of the whole run include) and the words/s from the
    end of that call to the end of training, `words_per_second_after_first_call` (absent when the
    process made one call): on a GPU, where a run is a few seconds of steps, they differ.
    """
    last_checkpoint = run.step
    process_start = time.perf_counter()
    train_start = process_start - run.train_seconds
    before = (run.train_seconds, run.words)  # what earlier processes of a resumed run trained
    first_call: dict[str, float] = {}
    objective = ob.get(train_config.objective)

    def account(pending) -> None:
        """Adds a finished call's metrics to `run` (waits for it); stops on a NaN loss."""
        metrics, n_steps, step_words = pending
        loss_sum = float(np.sum(np.asarray(metrics["loss_sum"], np.float64)))
        count = float(np.sum(np.asarray(metrics["count"], np.float64)))
        if not math.isfinite(loss_sum):
            where = (
                f"the last good checkpoint is step {last_checkpoint} in {out / rundir.CHECKPOINTS} "
                "(resume=True continues from it)"
                if checkpoints.latest_step() is not None
                else "no checkpoint was written yet: start again"
            )
            raise ParameterError(
                f"the loss became {loss_sum} at step {run.step + n_steps} (epoch "
                f"{run.epoch + 1}) - lower lr (now {train_config.lr})"
                f"{_large_batch_advice(train_config, config.batch_size)}; {where}",
                "lr",
                "row_scale",
                "row_step_max",
                "resume",
            )
        words = sum(step_words)
        run.add(n_steps, words, loss_sum, count)
        bar.update(words)
        bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4f}", refresh=False)
        nonlocal clock_restarted, calls_done
        if not clock_restarted:
            _restart_clock(bar)
            clock_restarted = True
            first_call["first_call_seconds"] = time.perf_counter() - process_start
            first_call["first_call_words"] = run.words - before[1]
        calls_done += 1
        if calls_done % _RELEASE_EVERY == 1:  # after compiling, then now and then
            data.release_free_memory()

    clock_restarted = False  # after the first call of this process, which compiled the step
    calls_done = 0

    def checkpoint() -> None:
        run.train_seconds = time.perf_counter() - train_start
        if not bool(jax.numpy.isfinite(tr.input_table(state)).all()):
            kept = (
                "the last good checkpoint is kept"
                if checkpoints.latest_step() is not None
                else ("no checkpoint was written yet: start again")
            )
            raise ParameterError(
                f"the table holds NaN or infinite values at step {run.step} - lower lr; {kept}",
                "lr",
            )
        checkpoints.save(run.step, state, dataclasses.asdict(run))

    while run.epoch < config.epochs:
        if device_batches is not None:
            calls = device_batches.calls(run.epoch, config.epochs, run.batch)
        else:
            stream = objective.batches(corpus, train_config, config, run.epoch, run.batch)
            calls = _host_calls(stream, config, mesh)
        pending = None  # the call in flight: its metrics are read after the next is queued
        for batch, n_steps, step_words in calls:
            state, metrics = steps[n_steps](state, batch)
            if pending is not None:
                account(pending)
            pending = (metrics, n_steps, step_words)
            done = run.step + n_steps
            stopped = config.max_steps is not None and done >= config.max_steps
            if stopped or (
                config.checkpoint_every and done - last_checkpoint >= config.checkpoint_every
            ):
                account(pending)
                pending = None
                checkpoint()
                last_checkpoint = run.step
            if stopped:
                calls.close()
                return state, False, _after_first_call(first_call, run, before)
        if pending is not None:
            account(pending)
        run.end_epoch()
    run.train_seconds = time.perf_counter() - train_start
    if last_checkpoint != run.step or checkpoints.latest_step() is None:
        checkpoint()
    return state, True, _after_first_call(first_call, run, before)


def _after_first_call(first_call: dict, run: Progress, before: tuple[float, int]) -> dict:
    """`first_call_seconds` and the words/s after this process's first call (see `_train`), up
    to the end of its training clock (`run.train_seconds`, set before the last checkpoint)."""
    if not first_call:
        return {}
    seconds = run.train_seconds - before[0] - first_call["first_call_seconds"]
    words = run.words - before[1] - first_call.pop("first_call_words")
    if words > 0 and seconds > 0:
        first_call["words_per_second_after_first_call"] = words / seconds
    return first_call


_RELEASE_EVERY = 64  # calls between data.release_free_memory() in the loop


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


def _settings(paths, corpus: Corpus, train_config: tr.TrainConfig, config: FitConfig) -> dict:
    """The settings a resumed run must share (not max_steps or the checkpoint schedule).

    The corpus is identified by its files' paths and the digest of their content, and the
    vocabulary by a digest of its words and counts: rows learned for one word must not carry
    on as another's.
    """
    fit_settings = dataclasses.asdict(config)
    for name in ("max_steps", "checkpoint_every", "keep_checkpoints", "mesh", "split", "cache_dir"):
        fit_settings.pop(name)
    vocab = hashlib.blake2b(digest_size=16)
    vocab.update("\n".join(corpus.vocab.index_to_key).encode())
    vocab.update(np.asarray(corpus.vocab.counts, np.int64).tobytes())
    return {
        "corpus": [os.path.abspath(p) for p in paths],
        "corpus_digest": corpus.digest,
        "vocab_digest": vocab.hexdigest(),
        "train": dataclasses.asdict(train_config),
        "fit": fit_settings,
        # what "auto" and None picked for this batch size: a later version may pick otherwise
        "row_step": ob.row_step(train_config, config.batch_size),
    }


def _large_batch_advice(train_config, batch_size: int) -> str:
    """What else to try when a sparse SGD step larger than the objective's default diverged."""
    if not train_config.sparse or batch_size <= ob.get(train_config.objective).batch_size:
        return ""
    rule = ob.row_scale(train_config, batch_size)
    if rule == "none":
        return ", or damp this large batch's rows with row_scale='auto'"
    if rule == "newton" and ob.row_step_max(train_config, batch_size) is None:
        # in the first steps the output rows are near 0: the input rows' Newton steps are huge
        return ", or bound each row's step with row_step_max=1.0 (BENCHMARKS.md, section 7)"
    return ""


def _check_same_settings(saved: dict, current: dict, out: Path, train_config) -> None:
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    # A run saved before a setting existed ran with its default.
    defaults = json.loads(json.dumps(dataclasses.asdict(FitConfig())))
    for name in ("tokenizer", "lowercase", "end_of_text", "stride"):
        saved.get("fit", {}).setdefault(name, defaults[name])
    saved.get("fit", {}).setdefault("batches", "host")  # the only batches before the option
    saved_fit = saved.get("fit", {})
    if "shuffle_words" not in saved_fit:  # word2vec's chunk was its pipeline's (next-token: none)
        now = current.get("fit", {}).get("shuffle_words")
        saved_fit["shuffle_words"] = (
            None if now is None else _pipeline_chunk(saved_fit.get("batches", "host"))
        )
    saved.get("train", {}).setdefault("row_scale", "none")
    saved.get("train", {}).setdefault("row_cap", 32)
    saved.get("train", {}).setdefault("row_step_max", None)
    saved.get("train", {}).setdefault("row_passes", 1)
    saved.get("train", {}).setdefault("row_directions", 1)
    saved.get("train", {}).setdefault("row_balance", False)
    saved.get("train", {}).setdefault("table_dtype", "float32")
    saved.get("train", {}).setdefault("ns_exponent", 0.75)
    for settings in (saved, current):  # "auto" and None are what they picked for the batch size
        train, batch_size = settings.get("train", {}), settings.get("fit", {}).get("batch_size")
        recorded = settings.pop("row_step", None)  # only a checkpoint from before it lacks one
        if recorded is not None:
            train.update(recorded)
            continue
        if batch_size is None or "row_scale" not in train:
            continue
        try:
            picked = dataclasses.replace(
                train_config,
                row_scale=train["row_scale"],
                row_passes=train["row_passes"],
                row_step_max=train["row_step_max"],
                row_directions=train["row_directions"],
                row_balance=train["row_balance"],
            )
        except ParameterError:  # not a step this run's config can take: compared as saved
            continue
        train.update(ob.row_step(picked, batch_size))
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
    for name, what in (
        ("corpus_digest", "the corpus files' content"),
        ("vocab_digest", "the vocabulary"),
    ):
        if saved.get(name) != current.get(name):
            diffs.append(
                f"{what} changed since the checkpoint ({name} {saved.get(name)} -> {current.get(name)})"
            )
    raise ParameterError(
        f"{out} holds a run with other settings ({'; '.join(diffs)}) - resume with the same "
        "settings, or pass overwrite=True to start afresh",
        "overwrite",
    )


def _pipeline_chunk(batches: str) -> int:
    """Words per chunk of the host or device pipeline at the CPU's batch sizes (the smallest;
    every batch size's, for a run saved before `FitConfig.shuffle_words`)."""
    return _DEVICE_CHUNK_TOKENS if batches == "device" else data.CHUNK_TOKENS


def _summary(run: Progress, corpus: Corpus, started: float) -> dict[str, Any]:
    seconds = run.train_seconds
    return {
        "finished": True,
        "steps": run.step,
        "epochs_done": run.epoch,
        "words": run.words,
        "loss": run.loss_sum / max(run.count, 1.0),
        "epoch_losses": run.epoch_losses,
        "train_seconds": seconds,
        "words_per_second": run.words / seconds if seconds > 0 else None,
        "wall_seconds": time.perf_counter() - started,
        "vocab_size": len(corpus.vocab),
        "corpus_words": corpus.n_raw_words,
        "settings": run.settings,
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
    }


def _restart_clock(bar) -> None:
    """Words/s and time left count from now: the first call also compiled the step (seconds at
    a rate of 0), which would show an ETA of hours until the average caught up."""
    from tqdm.std import EMA

    if bar.disable:  # no bar shown (progress=False, or another host)
        return
    now = bar._time()
    bar.start_t = now - 1e-9
    bar.initial = bar.n
    bar.last_print_t, bar.last_print_n = now, bar.n
    bar._ema_dn, bar._ema_dt = EMA(bar.smoothing), EMA(bar.smoothing)
    bar._ema_miniters = EMA(bar.smoothing)


def _progress_bar(total_words: int, done_words: int, enabled: bool, unit: str = "word"):
    from tqdm.auto import tqdm

    return tqdm(
        total=total_words,
        initial=done_words,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        smoothing=0.1,
        disable=not enabled,
    )
