"""Times jaxembed's training step: dense vs sparse row updates, batch sizes, steps per call.

    python benchmarks/train_step.py --vocab 10000 50000 --dim 200 768 --batch 4096
    python benchmarks/train_step.py --vocab 61286 --dim 200 --batch 1024 4096 --update sparse \
        --share-negatives 1 64

Batches are synthetic skip-gram pairs drawn from a Zipf-like distribution (as word frequencies
are), so the rows a batch touches repeat as they do in real text. Prints one line per setting:
milliseconds per step and pairs per second (median of --repeats timed calls).
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import numpy as np

from jaxembed.train import TrainConfig, init_state, make_train_step


def synthetic_batches(vocab_size: int, batch: int, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, vocab_size + 1)
    probs /= probs.sum()
    shape = (steps, batch)
    return {
        "center_B": rng.choice(vocab_size, size=shape, p=probs).astype(np.int32),
        "context_B": rng.choice(vocab_size, size=shape, p=probs).astype(np.int32),
        "mask_B": np.ones(shape, np.float32),
        "progress": np.linspace(0, 1, steps, dtype=np.float32),
    }


def time_step(config: TrainConfig, vocab_size: int, batch: int, steps: int, repeats: int) -> float:
    """Seconds per step (median over repeats) of `steps` stacked steps per call."""
    batches = synthetic_batches(vocab_size, batch, steps)
    probs = (1.0 / np.arange(1, vocab_size + 1)) ** 0.75
    step = make_train_step(config, probs, stacked=True)
    state = init_state(config, vocab_size)
    state, _ = step(state, batches)  # compile
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, metrics = step(state, batches)
        jax.block_until_ready(state)
        times.append((time.perf_counter() - start) / steps)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dim", type=int, nargs="+", default=[200, 768])
    parser.add_argument("--batch", type=int, nargs="+", default=[4096])
    parser.add_argument("--steps", type=int, default=4, help="steps per jitted call (scan)")
    parser.add_argument("--update", nargs="+", default=["dense", "sparse"])
    parser.add_argument("--optimizer", nargs="+", default=["sgd"])
    parser.add_argument(
        "--share-negatives", type=int, nargs="+", default=[1], help="pairs per draw of noise words"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {jax.device_count()} device(s)"
    )
    grid = itertools.product(
        args.optimizer, args.vocab, args.dim, args.batch, args.update, args.share_negatives
    )
    for optimizer, vocab_size, dim, batch, update, share in grid:
        config = TrainConfig(dim=dim, update=update, optimizer=optimizer, share_negatives=share)
        seconds = time_step(config, vocab_size, batch, args.steps, args.repeats)
        print(
            f"{optimizer:5s} {update:6s} V={vocab_size:6d} D={dim:4d} B={batch:5d} G={share:4d}: "
            f"{seconds * 1e3:8.2f} ms/step {batch / seconds / 1e6:6.3f} M pairs/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
