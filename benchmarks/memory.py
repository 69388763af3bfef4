"""Memory benchmark: peak RSS of training a 50,257 x 768 table with Adam, dense vs row-wise updates.

    python benchmarks/memory.py [--quick] [--json-out memory.json]

Each configuration runs in its own subprocess (so ru_maxrss, read from wait4, is its own): it
builds `jaxembed.train`'s state for skip-gram (two V x D tables, "embed" and "out", as word2vec
has) and takes a few steps of `make_train_step` on synthetic batches of Zipf-distributed word IDs
(as word frequencies are), then reports its RSS after building the state, after the first step
(compilation) and at the end; its peak RSS while building the state and, separately (VmHWM reset
through /proc/self/clear_refs), while stepping; XLA's scratch memory for one step
(`memory_analysis`); and the median time of the later steps. A "runtime only" process (imports
and JAX started, no state) gives the floor to subtract. The parent's own reading of each child's
whole-process peak is in the JSON ("peak_rss_mib").

Configurations: Adam with `update="dense"` (gradient of the whole table, optax on the whole
table: true Adam) and `update="sparse"` (only the rows a batch touches: lazy Adam, whose untouched
rows keep their moments), and the same for SGD. What must be resident either way: both tables and,
for Adam, two moments per table, 6 x V x D float32 = 927 MB; dense steps add whole-table
gradients and updates on top.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _bench import (
    add_common_args,
    machine_info,
    machine_line,
    markdown_table,
    run_measured,
    write_json,
)

VOCAB, DIM = 50_257, 768
CONFIGS = {
    "runtime only": None,
    "Adam, dense": ("adam", "dense"),
    "Adam, sparse (row-wise)": ("adam", "sparse"),
    "SGD, dense": ("sgd", "dense"),
    "SGD, sparse (row-wise)": ("sgd", "sparse"),
}


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or its peak so far (VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Resets this process's VmHWM to its current RSS (Linux >= 4.0), to time-slice the peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def xla_temp_mib(step, state, batch) -> float | None:
    """XLA's scratch memory for one step (memory_analysis of the step jitted, state donated)."""
    import jax

    try:
        compiled = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
        return compiled.memory_analysis().temp_size_in_bytes / 2**20
    except Exception:  # a diagnostic only: the step's internals may not allow re-jitting
        return None


def worker(name: str, steps: int, batch_size: int, vocab_size: int, dim: int) -> dict:
    """Builds the state, takes `steps` steps and reports RSS and step times (runs in a child)."""
    import jax
    import numpy as np

    from jaxembed.train import TrainConfig, init_state, make_train_step

    jax.block_until_ready(jax.numpy.zeros(1) + 1)  # start the runtime
    result = {"rss_runtime_mib": rss_mib()}
    if CONFIGS[name] is None:
        return result
    optimizer, update = CONFIGS[name]
    config = TrainConfig(objective="skipgram", dim=dim, optimizer=optimizer, update=update)
    counts_V = 1e6 / np.arange(1, vocab_size + 1)  # Zipf's law
    state = jax.block_until_ready(init_state(config, vocab_size))
    result["rss_state_mib"] = rss_mib()
    result["peak_init_mib"] = rss_mib("VmHWM")
    reset_peak()
    result["state_mib"] = sum(x.nbytes for x in jax.tree.leaves(state)) / 2**20
    step = make_train_step(config, counts_V**0.75)
    rng = np.random.default_rng(0)
    probs_V = counts_V / counts_V.sum()
    times = []
    for i in range(steps):
        batch = {
            "center_B": rng.choice(vocab_size, batch_size, p=probs_V).astype(np.int32),
            "context_B": rng.choice(vocab_size, batch_size, p=probs_V).astype(np.int32),
            "mask_B": np.ones(batch_size, np.float32),
            "progress": np.float32(i / steps),
        }
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - start)
        if i == 0:
            result["rss_after_first_step_mib"] = rss_mib()
    result["rss_end_mib"] = rss_mib()
    result["peak_steps_mib"] = rss_mib("VmHWM")
    result["xla_temp_mib"] = xla_temp_mib(step, state, batch)  # compiles again: after the peak
    result["first_step_s"] = times[0]
    result["step_ms"] = 1e3 * float(np.median(times[1:])) if steps > 1 else None
    result["loss"] = float(metrics["loss_sum"] / metrics["count"])
    return result


def run_config(name: str, args: argparse.Namespace, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(steps)]
    for flag in ("batch_size", "vocab", "dim"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    measured = run_measured(cmd)
    if measured["returncode"] != 0:
        raise RuntimeError(f"{name} failed:\n{measured['stderr'][-3000:]}")
    row = {"config": name, **json.loads(measured["stdout"].strip().splitlines()[-1])}
    row["peak_rss_mib"] = measured["peak_rss_mib"]
    row["wall_s"] = measured["wall_s"]
    print(f"{name}: peak {row['peak_rss_mib']:,.0f} MiB", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--steps", type=int, help="steps per run (default 10; --quick 4)")
    parser.add_argument("--batch-size", type=int, default=1024, help="skip-gram pairs per step")
    parser.add_argument("--vocab", type=int, default=VOCAB, help="V, rows of each table")
    parser.add_argument("--dim", type=int, default=DIM, help="D, columns")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or (4 if args.quick else 10)
    if args.worker:
        print(json.dumps(worker(args.worker, steps, args.batch_size, args.vocab, args.dim)))
        return
    info = machine_info()
    print(f"machine: {machine_line(info)}\n", flush=True)
    names = (
        list(CONFIGS)
        if not args.quick
        else ["runtime only", "Adam, dense", "Adam, sparse (row-wise)"]
    )
    rows = [run_config(name, args, steps) for name in names]
    floor = rows[0]["rss_runtime_mib"]
    body = []
    for row in rows:
        temp = row.get("xla_temp_mib")
        body.append(
            [
                row["config"],
                f"{row.get('state_mib', 0):,.0f}",
                "-" if temp is None else f"{temp:,.0f}",
                f"{row.get('peak_init_mib', row['rss_runtime_mib']):,.0f}",
                f"{row.get('peak_steps_mib', row['rss_runtime_mib']):,.0f}",
                f"{row.get('peak_steps_mib', floor) - floor:,.0f}",
                "-" if row.get("step_ms") is None else f"{row['step_ms']:.1f}",
            ]
        )
    headers = ["configuration", "state MiB (arrays)", "XLA step scratch MiB"]
    headers += ["peak RSS, building state MiB", "peak RSS, steps MiB", "steps peak - runtime MiB"]
    headers += ["ms / step (median)"]
    print(
        f"\n## Skip-gram, two {args.vocab:,} x {args.dim} tables, batch {args.batch_size}, {steps} steps\n"
    )
    print(markdown_table(headers, body))
    by_name = {row["config"]: row for row in rows}
    ratios = {}
    for opt in ("Adam", "SGD"):
        dense, sparse = by_name.get(f"{opt}, dense"), by_name.get(f"{opt}, sparse (row-wise)")
        if dense and sparse:
            ratios[opt] = {
                "peak_dense_over_sparse": dense["peak_steps_mib"] / sparse["peak_steps_mib"],
                "peak_above_runtime_dense_over_sparse": (dense["peak_steps_mib"] - floor)
                / (sparse["peak_steps_mib"] - floor),
                "step_dense_over_sparse": dense["step_ms"] / sparse["step_ms"],
            }
            print(
                f"\n{opt}: dense / row-wise: peak RSS while stepping "
                f"{ratios[opt]['peak_dense_over_sparse']:.2f}x "
                f"({ratios[opt]['peak_above_runtime_dense_over_sparse']:.2f}x above the runtime), "
                "time per step "
                f"{ratios[opt]['step_dense_over_sparse']:.1f}x"
            )
    write_json(
        args.json_out,
        {
            "machine": info,
            "quick": args.quick,
            "vocab": args.vocab,
            "dim": args.dim,
            "steps": steps,
            "batch_size": args.batch_size,
            "runs": rows,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
