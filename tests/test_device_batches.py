"""Batches made on the device (jaxembed.device_batches) sample the host pipeline's process."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxembed import data, loop
from jaxembed import objectives as ob
from jaxembed.corpus import corpus_from_ids
from jaxembed.device_batches import DeviceBatches
from jaxembed.train import TrainConfig
from jaxembed.vocab import Vocab

WINDOW, N = 3, 24_000
KEEP_CLASSES = 4  # word i is of class i % 4, with one of four keep probabilities
# Counts in units of the threshold t = sample * sum(counts): kept at about 1, 0.6, 0.3, 0.15.
COUNTS_T = np.array([1.0, 5.6, 16.0, 55.0])
SAMPLE = 1.0 / (N / KEEP_CLASSES * COUNTS_T.sum())  # makes sum(counts) / t what it must be


@pytest.fixture(scope="module")
def corpus():
    """Word i has ID i (so a pair's IDs give its offset); sentences of 5 to 60 words; counts set
    so that the four classes are kept with probabilities of about 1, 0.6, 0.3 and 0.15."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 61, N // 20)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    starts = starts[starts < N].tolist() + [N]
    counts = (10 * COUNTS_T[np.arange(N) % KEEP_CLASSES]).astype(np.int64)  # t = 10
    vocab = Vocab([f"w{i}" for i in range(N)], counts)
    return corpus_from_ids(np.arange(N), vocab, starts)


def _device_examples(corpus, objective, seed, epoch, batch_size=512, chunk_tokens=8_000):
    """(centre, context) ID pairs of one device epoch: CBOW's contexts as one pair per slot."""
    stream = DeviceBatches(
        corpus, objective, WINDOW, SAMPLE, batch_size, seed, 4, chunk_tokens=chunk_tokens
    )
    centers, pairs, words = [], [], 0
    for batch, _, step_words in stream.calls(epoch, 2):
        words += sum(step_words)
        real = np.asarray(batch["mask_B"]) > 0
        center = np.asarray(batch["center_B"])
        centers.append(center[real])
        if objective == "skipgram":
            pairs.append(np.stack([center[real], np.asarray(batch["context_B"])[real]], 1))
        else:
            slots = np.asarray(batch["context_mask_BxC"]) > 0
            slots &= real[..., None]
            center_slots = np.broadcast_to(center[..., None], slots.shape)
            context = np.asarray(batch["context_BxC"])
            pairs.append(np.stack([center_slots[slots], context[slots]], 1))
    return np.concatenate(centers), np.concatenate(pairs), words


def _host_examples(corpus, objective, seed, epoch, batch_size=512):
    make = data.skipgram_batches if objective == "skipgram" else data.cbow_batches
    centers, pairs, words = [], [], 0
    for batch in make(corpus, WINDOW, SAMPLE, batch_size, seed, epoch, epochs=2):
        words += batch["words"]
        real = batch["mask_B"] > 0
        centers.append(batch["center_B"][real])
        if objective == "skipgram":
            pairs.append(np.stack([batch["center_B"][real], batch["context_B"][real]], 1))
        else:
            slots = batch["slot_mask_L"] > 0
            center = batch["center_B"][batch["slot_center_L"][slots]]
            pairs.append(np.stack([center, batch["context_L"][slots]], 1))
    return np.concatenate(centers), np.concatenate(pairs), words


def _within(a, b, sigmas=5.0):
    """Counts a, b (arrays) of two independent samples of one process agree (Poisson error)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) <= sigmas * np.sqrt(a + b + 1.0)


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
def test_device_batches_sample_the_host_pipelines_process(corpus, objective):
    keep_V = data.keep_probabilities(corpus.vocab.counts, SAMPLE)
    assert 0.1 < keep_V[3] < keep_V[2] < keep_V[1] < keep_V[0] == 1.0  # the fixture's classes
    device = [_device_examples(corpus, objective, seed=5, epoch=e) for e in range(2)]
    host = [_host_examples(corpus, objective, seed=5, epoch=e) for e in range(2)]
    for name, runs in (("device", device), ("host", host)):
        for _, _, words in runs:  # each epoch accounts for every raw word
            assert words == corpus.n_raw_words, name

    def keep_counts(runs):  # distinct centres of each class: kept words (with a context word)
        return np.array(
            [
                sum(np.unique(c[c % KEEP_CLASSES == k]).size for c, _, _ in runs)
                for k in range(KEEP_CLASSES)
            ]
        )

    kept_device, kept_host = keep_counts(device), keep_counts(host)
    assert _within(kept_device, kept_host).all(), (kept_device, kept_host)
    # ... at the rates word2vec's formula gives (a few kept words in sentences of one lack pairs)
    per_class = 2 * N / KEEP_CLASSES
    np.testing.assert_allclose(kept_device / per_class, keep_V[:KEEP_CLASSES], atol=0.03)

    def offsets(runs):
        both = np.concatenate([p for _, p, _ in runs])
        return np.bincount(np.abs(both[:, 1] - both[:, 0]), minlength=60)

    hist_device, hist_host = offsets(device), offsets(host)
    assert hist_device[0] == 0 and hist_host[0] == 0  # a word is never its own context
    assert hist_device.sum() > 50_000
    assert _within(hist_device, hist_host).all(), (hist_device[:12], hist_host[:12])
    for (_, p_device, _), (_, p_host, _) in zip(device, host, strict=True):  # per epoch
        assert _within(len(p_device), len(p_host)), (len(p_device), len(p_host))
    # pairs never cross a sentence
    sentence = np.searchsorted(corpus.sentence_starts, np.arange(N), side="right")
    both = np.concatenate([p for _, p, _ in device])
    assert np.array_equal(sentence[both[:, 0]], sentence[both[:, 1]])


def test_device_stream_is_a_pure_function_of_seed_and_epoch_and_resumes(corpus):
    stream = DeviceBatches(corpus, "skipgram", WINDOW, SAMPLE, 256, 7, 4, chunk_tokens=8_000)

    def same(xs, ys):
        assert len(xs) == len(ys)
        return all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(xs, ys, strict=True))

    first = [(np.asarray(b["center_B"]), w) for b, _, w in stream.calls(0, 2)]
    assert same([(np.asarray(b["center_B"]), w) for b, _, w in stream.calls(0, 2)], first)
    other = np.asarray(next(stream.calls(1, 2))[0]["center_B"])
    assert not np.array_equal(other, first[0][0])
    # start_batch (a checkpoint at the end of call c) gives the tail of the full epoch
    for c in (1, 5, len(first) - 1):
        tail = [(np.asarray(b["center_B"]), w) for b, _, w in stream.calls(0, 2, 4 * c)]
        assert same(tail, first[c:])


TRAIN = TrainConfig(dim=8, seed=3)


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
def test_device_batches_train_like_host_batches_and_resume_bit_exact(tmp_path, objective):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(24)]
    lines = [
        " ".join(words[12 * t + j] for j in rng.integers(0, 12, 8)) for t in rng.integers(0, 2, 400)
    ]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    train = TrainConfig(objective=objective, dim=8, seed=3)
    fit = loop.FitConfig(window=2, sample=0.0, min_count=1, epochs=2, batch_size=64)
    fit = loop.FitConfig(**{**vars(fit), "steps_per_call": 4, "checkpoint_every": 8})
    device_fit = loop.FitConfig(**{**vars(fit), "batches": "device"})
    host = loop.fit([path], tmp_path / "host", train, fit, progress=False).summary
    whole = loop.fit([path], tmp_path / "whole", train, device_fit, progress=False).summary
    assert whole["settings"]["fit"]["batches"] == "device"
    assert whole["words"] == host["words"] == 2 * 3200
    assert abs(whole["loss"] - host["loss"]) < 0.02 * host["loss"], (whole["loss"], host["loss"])
    part = tmp_path / "part"
    stop = loop.FitConfig(**{**vars(device_fit), "max_steps": 12})
    assert not loop.fit([path], part, train, stop, progress=False).summary["finished"]
    resumed = loop.fit([path], part, train, device_fit, resume=True, progress=False).summary
    np.testing.assert_array_equal(
        np.load(part / "table.npy"), np.load(tmp_path / "whole/table.npy")
    )
    for key in ("steps", "words", "loss", "epoch_losses"):
        assert resumed[key] == whole[key], key
    with pytest.raises(ValueError, match="other settings .*batches"):
        loop.fit([path], part, train, fit, resume=True, progress=False)


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
def test_device_batches_above_the_default_size_take_newton_steps(tmp_path, objective):
    """What a GPU runs: device batches (CBOW in the padded layout) larger than the objective's
    CPU default, where row_scale="auto" is newton."""
    lines = [" ".join(f"w{(i * 7 + j) % 30}" for j in range(9)) for i in range(400)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    batch = ob.get(objective).batch_size + 1
    fit = loop.FitConfig(window=2, sample=0.0, min_count=1, epochs=2, batch_size=batch)
    fit = loop.FitConfig(**{**vars(fit), "steps_per_call": 2, "batches": "device"})
    tables = {}
    for rule in ("auto", "newton"):
        train = TrainConfig(objective=objective, dim=8, seed=3, row_scale=rule)
        result = loop.fit([tmp_path / "c.txt"], tmp_path / rule, train, fit, progress=False)
        assert np.isfinite(result.summary["loss"]) and result.summary["steps"] >= 4
        tables[rule] = result.table_VxD
    np.testing.assert_array_equal(tables["auto"], tables["newton"])


def test_one_step_per_call_and_the_cli_flag(tmp_path):
    from test_loop import _cli

    lines = [" ".join(f"w{(i * 7 + j) % 30}" for j in range(9)) for i in range(200)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    argv = [str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"), "--dim", "8"]
    argv += ["--batches", "device", "--steps-per-call", "1", "--batch-size", "64", "--epochs", "1"]
    assert _cli([*argv, "--min-count", "1", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["settings"]["fit"]["batches"] == "device"
    assert summary["words"] == 1800 and summary["steps"] > 1


def test_device_batches_refuse_next_token(tmp_path):
    from jaxembed.checks import ParameterError

    config = loop.FitConfig(batches="device", epochs=1)
    with pytest.raises(ParameterError, match="batches='host'"):
        loop.fit("lee", tmp_path / "run", TrainConfig(objective="next-token"), config)


_MESH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import jax
    assert jax.device_count() == 8
    from jaxembed import loop
    from jaxembed.train import TrainConfig

    out, objective = {}, sys.argv[2]
    for name, mesh in (("one", None), ("data8", (8, 1)), ("4x2", (4, 2))):
        fit = loop.FitConfig(window=3, sample=1e-3, epochs=2, batch_size=256,
                             steps_per_call=4, batches="device", mesh=mesh)
        train = TrainConfig(objective=objective, dim=16)
        result = loop.fit("lee", sys.argv[1] + "/" + objective + name, train, fit,
                          progress=False)
        out[objective + "/" + name] = [result.summary["loss"], result.table_VxD.tolist()]
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize(
    "objective", ["skipgram", pytest.param("cbow", marks=pytest.mark.slow)]
)  # cbow: slow, CI runs it
def test_device_batches_on_eight_devices_train_as_on_one(tmp_path, objective):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", _MESH_SCRIPT, str(tmp_path), objective],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads(done.stdout.strip().splitlines()[-1])
    for key, (loss, table) in results.items():
        base_loss, base_table = results[key.split("/")[0] + "/one"]
        assert abs(loss - base_loss) < 1e-3 * base_loss, key
        np.testing.assert_allclose(table, base_table, rtol=1e-3, atol=1e-4, err_msg=key)
