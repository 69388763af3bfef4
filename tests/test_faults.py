"""Nothing lost under faults: overwrite, concurrent runs, shared checkpoint folders, temp files."""

import contextlib
import os

import numpy as np
import pytest
from conftest import random_corpus_file

from jaxembed import export, files, loop, rundir
from jaxembed.corpus import read_corpus
from jaxembed.export import export_projector
from jaxembed.train import TrainConfig
from jaxembed.vocab import Vocab

TRAIN = TrainConfig(dim=8, seed=3)
FIT = loop.FitConfig(window=2, sample=0.0, min_count=1, epochs=1, batch_size=64, steps_per_call=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return random_corpus_file(tmp_path_factory.mktemp("corpus"), 24, 200, 8)


def _snapshot(out):
    """Every file under `out` with its bytes."""
    return {
        os.path.relpath(os.path.join(d, f), out): open(os.path.join(d, f), "rb").read()
        for d, _, names in os.walk(out)
        for f in names
    }


def test_a_failed_overwrite_keeps_the_old_run(corpus, tmp_path):
    out = tmp_path / "run"
    loop.fit([corpus], out, TRAIN, FIT, progress=False)
    before = _snapshot(out)
    wild = TrainConfig(dim=8, lr=1e30, min_lr=1e30)
    with pytest.raises(ValueError, match="loss became|NaN or infinite"):
        loop.fit([corpus], out, wild, FIT, overwrite=True, progress=False)
    assert _snapshot(out) == before  # nothing of the failed run is left either


def test_a_successful_overwrite_replaces_the_run_and_can_be_resumed(corpus, tmp_path):
    out = tmp_path / "run"
    loop.fit([corpus], out, TRAIN, FIT, progress=False)
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    old_table = (out / "table.npy").read_bytes()
    other = TrainConfig(dim=8, seed=4)
    result = loop.fit([corpus], out, other, FIT, overwrite=True, progress=False)
    assert (out / "table.npy").read_bytes() != old_table
    np.testing.assert_array_equal(np.load(out / "table.npy"), result.table_VxD)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoints", "notes.txt", "run.json", "table.npy", "vectors.txt", "vocab.txt"]
    )
    assert rundir.checkpoint_steps(out) == [result.summary["steps"]]
    resumed = loop.fit([corpus], out, other, FIT, resume=True, progress=False)  # nothing left to do
    np.testing.assert_array_equal(resumed.table_VxD, result.table_VxD)


def test_a_second_run_on_the_same_directory_is_refused(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with rundir.lock(out):  # another process's run, as far as flock is concerned
        with pytest.raises(FileExistsError, match="in use by another jaxembed run"):
            loop.fit([corpus], out, TRAIN, FIT, progress=False)
    assert not any(out.iterdir())
    loop.fit([corpus], out, TRAIN, FIT, progress=False)  # the lock is released with its holder


def test_a_symlinked_checkpoints_folder_is_refused(corpus, tmp_path):
    shared = tmp_path / "shared"
    (shared / "1").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").symlink_to(shared)
    with pytest.raises(FileExistsError, match="symbolic link"):
        loop.fit([corpus], tmp_path / "run", TRAIN, FIT, overwrite=True, progress=False)
    assert (shared / "1").is_dir()


def test_only_checkpoints_the_run_wrote_are_deleted(corpus, tmp_path):
    out = tmp_path / "run"
    fit = loop.FitConfig(
        **{**vars(FIT), "max_steps": 2, "checkpoint_every": 1, "keep_checkpoints": 1}
    )
    loop.fit([corpus], out, TRAIN, fit, progress=False)
    victim = out / "checkpoints" / "1"
    victim.mkdir()
    (victim / "notes.txt").write_text("not a checkpoint")
    loop.fit(
        [corpus],
        out,
        TRAIN,
        loop.FitConfig(**{**vars(fit), "max_steps": None}),
        resume=True,
        progress=False,
    )
    assert (victim / "notes.txt").read_text() == "not a checkpoint"
    assert len(rundir.checkpoint_steps(out)) == 1


def test_resume_refuses_a_changed_corpus_at_the_same_path(corpus, tmp_path):
    path = tmp_path / "c.txt"
    lines = corpus.read_text().splitlines()
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    loop.fit([path], out, TRAIN, loop.FitConfig(**{**vars(FIT), "max_steps": 3}), progress=False)
    path.write_text("\n".join(lines[::-1]) + "\n")  # the same words, other lines: same vocabulary
    with pytest.raises(ValueError, match="the corpus files' content changed since the checkpoint"):
        loop.fit([path], out, TRAIN, FIT, resume=True, progress=False)
    path.write_text("\n".join(lines[:100]) + "\n")  # other counts
    with pytest.raises(ValueError, match="the vocabulary changed since the checkpoint"):
        loop.fit([path], out, TRAIN, FIT, resume=True, progress=False)


def test_the_corpus_cache_never_follows_a_planted_link(corpus, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    for name in (f".tmp-ids-{os.getpid()}.npy", f".tmp-raw-{os.getpid()}"):  # old, guessable names
        (cache / name).symlink_to(target)
    read_corpus(corpus, min_count=1, cache_dir=cache)
    assert target.read_text() == "keep me"
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp") and not p.is_symlink()]


def test_atomic_group_replaces_all_files_or_none(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError), files.atomic_group([a, b], "w") as (fa, fb):
        fa.write("new a")
        fb.write("new")
        raise RuntimeError("disk full")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    with files.atomic_group([a, b], "w") as (fa, fb):
        fa.write("new a")
        fb.write("new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")


def test_a_projector_export_failing_halfway_keeps_the_old_pair(tmp_path, monkeypatch):
    vocab = Vocab.from_keys(["king", "queen"])
    export_projector(np.zeros((2, 3), np.float32), vocab, tmp_path)
    before = _snapshot(tmp_path)
    real = files.atomic_group

    @contextlib.contextmanager
    def metadata_disk_full(paths, mode="wb"):
        with real(paths, mode) as (vectors, metadata):

            class Full:
                def write(self, data):
                    raise OSError(28, "No space left on device")

            yield vectors, Full()

    monkeypatch.setattr(export, "atomic_group", metadata_disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_projector(np.ones((2, 3), np.float32), vocab, tmp_path)
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------------------- silently wrong


@pytest.mark.parametrize("bad", [2**32 + 1, 2**40, -(2**33)])
def test_ids_beyond_int32_are_refused_before_any_cast(bad):
    import jax.numpy as jnp

    from jaxembed.embed import checked_lookup, lookup

    table = jnp.arange(18.0).reshape(6, 3)
    for call in (checked_lookup, lookup):
        with pytest.raises(ValueError, match=rf"ids must be in \[0, 6\); got {bad} at position 1"):
            call(table, np.array([0, bad]))
    err, _ = checked_lookup(table, np.array([0, 7]))  # representable IDs: checked at run time
    assert "got 7" in err.get()


@pytest.mark.parametrize("header", ["", "2 2\n"])
def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path, header):
    from jaxembed.io import load_vectors

    path = tmp_path / "v.txt"
    path.write_bytes(b"\xef\xbb\xbf" + (header + "king 1 2\nqueen 3 4\n").encode())
    table_VxD, vocab = load_vectors(path)
    assert vocab.index_to_key == ("king", "queen")
    np.testing.assert_array_equal(table_VxD, [[1, 2], [3, 4]])


def test_an_empty_word_is_refused_when_saving(tmp_path):
    from jaxembed.export import save_vectors

    with pytest.raises(ValueError, match="word 1 is empty"):
        save_vectors(np.zeros((2, 2), np.float32), Vocab.from_keys(["a", ""]), tmp_path / "v.txt")
    assert not (tmp_path / "v.txt").exists()


@pytest.mark.parametrize("restrict", [0, -5])
def test_restrict_vocab_must_be_positive(tmp_path, capsys, restrict):
    from jaxembed import cli
    from jaxembed.export import save_vectors

    save_vectors(
        np.eye(3, dtype=np.float32), Vocab.from_keys(["king", "queen", "man"]), tmp_path / "v.txt"
    )
    code = cli.main(["evaluate", str(tmp_path / "v.txt"), "--restrict-vocab", str(restrict)])
    assert code == 2
    assert (
        f"--restrict-vocab must be a positive integer or None; got {restrict}"
        in capsys.readouterr().err
    )


def test_resume_takes_the_runs_saved_settings(corpus, tmp_path, capsys):
    from jaxembed import cli

    out = str(tmp_path / "run")
    first = [str(corpus), "--out", out, "--dim", "16", "--sample", "1e-4", "--window", "2"]
    first += ["--min-count", "1", "--batch-size", "64", "--steps-per-call", "1", "--no-progress"]
    assert cli.main(["train", *first, "--max-steps", "3"]) == 0
    # The README's line: the corpus, the directory and --resume, nothing else.
    assert cli.main(["train", str(corpus), "--out", out, "--resume", "--no-progress"]) == 0
    settings = rundir.read_summary(out)["settings"]
    assert settings["train"]["dim"] == 16 and settings["fit"]["sample"] == 1e-4
    assert np.load(tmp_path / "run" / "table.npy").shape[1] == 16
    capsys.readouterr()
    again = ["train", str(corpus), "--out", out, "--resume", "--dim", "32", "--epochs", "2"]
    assert cli.main(again) == 2
    err = capsys.readouterr().err
    assert (
        "dim: 16 in the checkpoint, 32 now" in err and "epochs: 5 in the checkpoint, 2 now" in err
    )
    assert "--overwrite" in err


def _damage_flip(step_dir):
    blobs = [p for p in step_dir.joinpath("state").rglob("*") if p.is_file()]
    blob = max(blobs, key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x10
    blob.write_bytes(bytes(data))


def _damage_truncate(step_dir):
    blobs = [p for p in step_dir.joinpath("state").rglob("*") if p.is_file()]
    blob = max(blobs, key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])


def _damage_no_state(step_dir):
    import shutil

    shutil.rmtree(step_dir / "state")


def _damage_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text("{not json")


@pytest.mark.parametrize("damage", [_damage_flip, _damage_truncate, _damage_no_state, _damage_meta])
def test_a_damaged_newest_checkpoint_falls_back_to_an_older_one(corpus, tmp_path, damage):
    fit = loop.FitConfig(**{**vars(FIT), "epochs": 2, "checkpoint_every": 4, "keep_checkpoints": 2})
    whole = loop.fit([corpus], tmp_path / "whole", TRAIN, fit, progress=False)
    part = tmp_path / "part"
    loop.fit(
        [corpus], part, TRAIN, loop.FitConfig(**{**vars(fit), "max_steps": 12}), progress=False
    )
    assert rundir.checkpoint_steps(part) == [8, 12]
    damage(part / "checkpoints" / "step_12")
    with pytest.warns(RuntimeWarning, match="checkpoint step 12 .* is damaged"):
        resumed = loop.fit([corpus], part, TRAIN, fit, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.table_VxD, whole.table_VxD)


def test_a_stray_empty_checkpoint_folder_is_skipped(corpus, tmp_path):
    out = tmp_path / "run"
    fit = loop.FitConfig(**{**vars(FIT), "max_steps": 4, "checkpoint_every": 4})
    loop.fit([corpus], out, TRAIN, fit, progress=False)
    (out / "checkpoints" / "step_999").mkdir()
    with pytest.warns(RuntimeWarning, match="step 999"):
        result = loop.fit([corpus], out, TRAIN, FIT, resume=True, progress=False)
    assert result.summary["finished"]


def test_a_run_killed_before_its_first_checkpoint_starts_over(corpus, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)  # all a kill during the first steps leaves
    assert loop.fit([corpus], out, TRAIN, FIT, progress=False).summary["finished"]


def test_a_piped_corpus_is_read_whole(corpus, tmp_path):
    read, write = os.pipe()
    data = corpus.read_bytes()
    pid = os.fork()
    if pid == 0:  # the writer
        os.close(read)
        os.write(write, data)
        os._exit(0)
    os.close(write)
    try:
        piped = read_corpus(f"/dev/fd/{read}", min_count=1)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    direct = read_corpus(corpus, min_count=1)
    assert piped.n_raw_words == direct.n_raw_words and piped.vocab == direct.vocab


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf16_corpus_is_refused(tmp_path, encoding):
    path = tmp_path / "c.txt"
    path.write_text("the cat sat on the mat\n" * 20, encoding=encoding)
    with pytest.raises(ValueError, match="looks like UTF-16 .* iconv"):
        read_corpus(path, min_count=1)


def test_non_finite_vectors_are_refused_naming_word_and_line(tmp_path):
    from jaxembed.io import load_vectors

    (tmp_path / "v.txt").write_text("3 2\nking 1 2\nqueen nan 4\nman 1e40 1\n")
    with pytest.raises(ValueError, match="line 3: the vector of 'queen' holds nan"):
        load_vectors(tmp_path / "v.txt")
    (tmp_path / "g.txt").write_text("king 1 2\nman 1e40 1\n")
    with pytest.raises(ValueError, match="line 2: the vector of 'man' holds inf"):
        load_vectors(tmp_path / "g.txt")


def test_leftover_temporary_outputs_are_removed_by_the_next_run(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".vectors.txt.abc123.tmp").write_text("half a file")
    loop.fit([corpus], out, TRAIN, FIT, progress=False)
    assert not list(out.glob(".*.tmp"))


def test_an_unwritable_out_is_refused_before_reading(corpus, tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    with pytest.raises(PermissionError, match="is not writable - choose another out_dir"):
        loop.fit([tmp_path / "missing.txt"], tmp_path / "run", TRAIN, FIT, progress=False)


def test_unclear_inputs_get_plain_messages(tmp_path):
    from jaxembed.io import load_vectors

    (tmp_path / "big.txt").write_text("1000000000000 300\nking 1 2\n")
    with pytest.raises(
        ValueError, match="promises 1000000000000 vectors .* more than this machine"
    ):
        load_vectors(tmp_path / "big.txt")
    run = tmp_path / "run"
    run.mkdir()
    Vocab.from_keys(["a", "b"]).save(run / "vocab.txt")
    np.save(run / "table.npy", np.zeros((2, 3), np.float32))
    (run / "table.npy").write_bytes((run / "table.npy").read_bytes()[:-8])
    with pytest.raises(ValueError, match="table.npy is damaged or truncated"):
        load_vectors(run)
    (tmp_path / "vocab.txt").write_text(
        "#jaxembed-vocab v1 size=1 specials=0\na\t" + "9" * 23 + "\n"
    )
    with pytest.raises(ValueError, match="line 2: count 9+ is too large"):
        Vocab.load(tmp_path / "vocab.txt")


def test_a_full_disk_gets_one_plain_message(corpus, tmp_path, capsys, monkeypatch):
    import errno

    from jaxembed import cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "save_vectors", full)  # the final outputs
    argv = ["train", str(corpus), "--out", str(tmp_path / "run"), "--dim", "4", "--epochs", "1"]
    assert cli.main([*argv, "--min-count", "1", "--batch-size", "64", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device - free some" in err and "--resume" in err
    assert "Traceback" not in err


def test_tab_separated_vectors_say_so(tmp_path):
    from jaxembed.io import load_vectors

    (tmp_path / "g.txt").write_text("king\t1\t2\nqueen\t3\t4\n")
    with pytest.raises(ValueError, match="separated by tabs"):
        load_vectors(tmp_path / "g.txt")
    (tmp_path / "w.txt").write_text("2 2\nking\t1\t2\nqueen\t3\t4\n")
    with pytest.raises(ValueError, match="separated by tabs"):
        load_vectors(tmp_path / "w.txt")


def test_a_second_process_on_the_same_directory_is_refused(corpus, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    out.mkdir()
    holder = "import sys, time; from jaxembed import rundir\n"
    holder += "with rundir.lock(__import__('pathlib').Path(sys.argv[1])):\n"
    holder += "    print('locked', flush=True); time.sleep(60)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(FileExistsError, match="in use by another jaxembed run"):
            loop.fit([corpus], out, TRAIN, FIT, progress=False)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.1)
    assert loop.fit([corpus], out, TRAIN, FIT, progress=False).summary["finished"]


@pytest.mark.slow
def test_a_killed_overwrite_run_leaves_the_old_run(corpus, tmp_path):
    """SIGKILL during --overwrite, after the new run's first checkpoint: the old run is intact."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    loop.fit([corpus], out, TRAIN, FIT, progress=False)
    before = _snapshot(out)
    argv = [str(corpus), "--out", str(out), "--overwrite", "--dim", "8", "--window", "2"]
    argv += ["--sample", "0", "--min-count", "1", "--epochs", "200", "--batch-size", "64"]
    argv += ["--steps-per-call", "1", "--checkpoint-every", "20", "--no-progress", "--seed", "4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxembed.cli", "train", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    staging = out / rundir.STAGING
    deadline = time.time() + 120
    while not rundir.checkpoint_steps(staging) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert rundir.checkpoint_steps(staging), "the new run had checkpointed before the kill"
    after = {k: v for k, v in _snapshot(out).items() if not k.startswith(rundir.STAGING)}
    assert after == before
    # The next --overwrite starts afresh and replaces the old run.
    loop.fit([corpus], out, TrainConfig(dim=8, seed=4), FIT, overwrite=True, progress=False)
    assert not staging.exists() and (out / "table.npy").read_bytes() != before["table.npy"]


def test_a_full_disk_inside_orbax_is_recognised():
    from jaxembed import cli

    # What tensorstore raises when a checkpoint write hits a full disk (seen on a 3 MiB tmpfs).
    err = ValueError(
        'RESOURCE_EXHAUSTED: Error writing "step/0" in OCDBT database: Failed to write 308098 '
        "bytes to file 5: No space left on device [os_error_code='28']"
    )
    assert cli._no_space(err)
    wrapped = RuntimeError("checkpoint failed")
    wrapped.__cause__ = err
    assert cli._no_space(wrapped) and not cli._no_space(ValueError("bad window"))


def test_a_nan_loss_before_any_checkpoint_says_so(corpus, tmp_path):
    wild = TrainConfig(dim=8, lr=1e30, min_lr=1e30)
    with pytest.raises(ValueError, match="no checkpoint was written yet: start again"):
        loop.fit([corpus], tmp_path / "run", wild, FIT, progress=False)


def test_json_output_stays_json():
    import json

    from jaxembed.commands.vectors import _json

    text = _json({"king": [("queen", float("nan")), ("prince", 0.5)], "inf": float("inf")})
    assert json.loads(text) == {"king": [["queen", None], ["prince", 0.5]], "inf": None}


def _checksums_by_definition(x):
    """`rundir.checksums` of one array as it defines them, in 64-bit arithmetic."""
    x = np.asarray(x)
    words = (x.view(np.uint32) if x.dtype.itemsize == 4 else x.astype(np.uint32)).ravel()
    words = words.astype(np.uint64)
    position = np.arange(1, words.size + 1, dtype=np.uint64)
    return [int(words.sum() % 2**32), int((words * position % 2**32).sum() % 2**32)]


_CHECKSUM_ARRAYS = """
import numpy as np
rng = np.random.default_rng(5)
table = rng.normal(size=(2000, 700)).astype(np.float32)  # 1.4M words: two blocks of rows
table[3, 4], table[5, 6] = np.nan, -0.0
arrays = [table, np.float32(-2.5), np.zeros((0, 3), np.float32), np.int32(-7),
          rng.integers(-2**31, 2**31, (3, 5, 8)).astype(np.int32), np.arange(6, dtype=np.uint8)]
"""


def test_checkpoint_checksums_are_their_definition_and_catch_flips_and_moves():
    namespace = {}
    exec(_CHECKSUM_ARRAYS, namespace)
    arrays = namespace["arrays"]
    import jax.numpy as jnp

    want = [_checksums_by_definition(x) for x in arrays]
    assert rundir.checksums(arrays) == want
    assert rundir.checksums([jnp.asarray(x) for x in arrays[:-1]]) == want[:-1]
    table = arrays[0]
    flipped = table.copy()
    flipped.view(np.uint32)[1999, 699] ^= 1 << 31
    moved = table.copy()
    moved[[0, 1]] = moved[[1, 0]]
    (base,) = rundir.checksums([table])
    (flip,) = rundir.checksums([flipped])
    (move,) = rundir.checksums([moved])
    assert flip[0] != base[0] and move[0] == base[0] and move[1] != base[1]


def test_checkpoint_checksums_of_sharded_arrays_equal_one_devices(tmp_path):
    """Sharded by rows, by columns, over both axes of a mesh and replicated, on 8 CPU devices:
    each shard is summed where it is, once, into the single array's checksums."""
    import json
    import subprocess
    import sys

    script = _CHECKSUM_ARRAYS + (
        "import json, jax, sys\n"
        "from jax.sharding import NamedSharding, PartitionSpec as P\n"
        "from jaxembed import rundir\n"
        "assert jax.device_count() == 8\n"
        "mesh = jax.make_mesh((4, 2), ('data', 'model'))\n"
        "specs = [P('data'), P(None, 'model'), P('data', 'model'), P(('data', 'model')), P()]\n"
        "out = [rundir.checksums([jax.device_put(table, NamedSharding(mesh, s))]) for s in specs]\n"
        "json.dump(out, sys.stdout)\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    namespace = {}
    exec(_CHECKSUM_ARRAYS, namespace)
    want = [_checksums_by_definition(namespace["table"])]
    assert json.loads(done.stdout) == [want] * 5
