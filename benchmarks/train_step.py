"""Times jaxembed's training step: dense vs sparse row updates, batch sizes, steps per call.

    python benchmarks/train_step.py --vocab 10000 50000 --dim 200 768 --batch 4096
    python benchmarks/train_step.py --vocab 61286 --dim 200 --batch 1024 4096 --update sparse \
        --share-negatives 1 64

Batches are synthetic skip-gram pairs drawn from a Zipf-like distribution (as word frequencies
are), so the rows a batch touches repeat as they do in real text. Prints one line per setting:
milliseconds per step, pairs per second (median of --repeats timed calls) and the achieved
bandwidth of the step's row traffic, to compare with the device's memory roofline (an H200 reads
about 4.8 TB/s, a 2-core CPU a few GB/s): `row_bytes` counts, for each row a sparse step
gathers (skip-gram: B context rows, B centre rows, ceil(B / G) * K noise rows), one read by the
gather and one read and one write by the scatter-add, 4 bytes a float, 2 with `--table-dtype
bfloat16` (`TrainConfig.table_dtype`, labelled "bf16"; dense steps move the whole tables instead
and are reported the same way, as a floor). `--row-scale` picks the
large-batch rule (`TrainConfig.row_scale`; "auto", the default, is plain SGD up to 4,096 pairs and
the newton step above): the line names the rule that ran; its GB/s count the same row traffic,
so a newton step's extra passes over its row totals show as a lower figure. `--row-passes` sets
newton's passes over the batch (`TrainConfig.row_passes`; default: 1, two above 131,072 pairs);
the line gives them after the rule ("newton x2"), and its GB/s count one pass's traffic.
`--row-directions` sets the directions of a row's curvature implicit or newton resolves
(`TrainConfig.row_directions`; "implicit k2", "newton k2 x2"): each costs about a gradient more.
A step that rebalances its tables (`TrainConfig.row_balance`, auto's above 262,144 pairs) says
"bal" after them: its Gram matrices are D x D products over the tables and the batch's rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import jax
import numpy as np

from jaxembed.objectives import row_balance, row_directions, row_passes, row_scale
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


def row_bytes(config: TrainConfig, batch: int) -> int:
    """Bytes of table rows a sparse skip-gram step moves: gathers, and scatter-adds (read+write)."""
    rows = 2 * batch + -(-batch // config.share_negatives) * config.negative
    return rows * config.dim * (2 if config.table_dtype == "bfloat16" else 4) * 3


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
    parser.add_argument(
        "--row-scale", nargs="+", default=["auto"], help="TrainConfig.row_scale values to time"
    )
    parser.add_argument(
        "--row-passes",
        type=int,
        nargs="+",
        default=[None],
        help="TrainConfig.row_passes values to time (default: the batch size's)",
    )
    parser.add_argument(
        "--row-directions",
        type=int,
        nargs="+",
        default=[None],
        help="TrainConfig.row_directions values to time (implicit, newton; default: the config's)",
    )
    parser.add_argument(
        "--table-dtype",
        nargs="+",
        default=["float32"],
        help="TrainConfig.table_dtype values to time (bfloat16: sparse SGD only)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {jax.device_count()} device(s)"
    )
    grid = itertools.product(
        args.optimizer,
        args.vocab,
        args.dim,
        args.batch,
        args.update,
        args.share_negatives,
        args.row_scale,
        args.row_passes,
        args.row_directions,
        args.table_dtype,
    )
    for optimizer, vocab_size, dim, batch, update, share, rule, passes, directions, dtype in grid:
        config = TrainConfig(
            dim=dim,
            update=update,
            optimizer=optimizer,
            share_negatives=share,
            row_scale=rule,
            row_passes=passes,
            table_dtype=dtype,
        )
        if directions is not None:
            config = dataclasses.replace(config, row_directions=directions)
        seconds = time_step(config, vocab_size, batch, args.steps, args.repeats)
        ran, directions = row_scale(config, batch), row_directions(config, batch)
        if ran == "implicit" or (ran == "newton" and directions > 1):
            ran += f" k{directions}"
        if row_passes(config, batch) > 1:
            ran += f" x{row_passes(config, batch)}"
        if row_balance(config, batch):
            ran += " bal"
        if dtype == "bfloat16":
            ran += " bf16"
        print(
            f"{optimizer:5s} {update:6s} V={vocab_size:6d} D={dim:4d} B={batch:7d} G={share:4d} "
            f"{ran:12s}: "
            f"{seconds * 1e3:8.2f} ms/step {batch / seconds / 1e6:7.3f} M pairs/s "
            f"{row_bytes(config, batch) / seconds / 1e9:7.2f} GB/s of rows",
            flush=True,
        )


if __name__ == "__main__":
    main()
