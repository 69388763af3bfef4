"""Lookup benchmark: a gather vs a one-hot matmul vs Dense on one-hot, and the gather's bandwidth.

    python benchmarks/lookup.py [--quick] [--json-out lookup.json]

Part 1 times `jaxembed.embed.lookup` (a gather), `one_hot_lookup` (one_hot(ids) @ table) and
`dense_lookup` (one-hot through `nn.Dense`), each jitted, on IDs of shape 8 x 1024, for
vocabularies from 1,000 to 50,257 and dims from 64 to 768; the three results are checked equal.
Target on CPU: the gather at least 300x faster than the one-hot product at GPT-2 size.

Part 2 asks what limits the gather. It counts bytes moved as read + written (the output's bytes
twice) and compares the gather with the machine's copy bandwidth measured in the same run: numpy
copying into a reused buffer (no first-touch page faults) and a jitted copy (like a gather, it
writes a fresh output buffer every call). Variants separate the costs: the gather without its
NaN-fill mask, the gather written into a reused (donated) buffer, numpy's take into a fresh and a
reused buffer, and several batch sizes, each with its page faults per call. Target: the gather at
least 60% of copy bandwidth. The full run repeats the (8, 1024) case in a child process whose
malloc backs large blocks with transparent huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from _bench import (
    add_common_args,
    calls_per_sample,
    interleaved,
    machine_info,
    machine_line,
    markdown_table,
    median,
    verdict,
    write_json,
)

from jaxembed.embed import dense_lookup, init_table, lookup, one_hot_lookup

GPT2 = (50_257, 768)
IDS_SHAPE = (8, 1024)
SPEEDUP_TARGET = 300.0  # gather vs one-hot at GPT-2 size
BANDWIDTH_TARGET = 0.60  # gather bytes/s as a fraction of copy bytes/s
SAMPLE_S = 0.15  # a cheap function's timed sample repeats it for about this long
LOOKUP = "jaxembed lookup (jit), fresh output"
COPY = "numpy copy, reused buffer"
JIT_COPY = "jit copy, fresh output"
DONATED = "jaxembed lookup (jit), into donated buffer"


def random_ids(vocab_size: int, shape: tuple[int, ...], seed: int = 1) -> jax.Array:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.integers(0, vocab_size, size=shape, dtype=np.int32))


# ----------------------------------------------------------------------------- part 1


def compare_routes(vocabs, dims, rounds: int, dense_max_cells: int) -> list[dict]:
    """Times the three lookup routes for every (V, D); one-hot and Dense once per round."""
    rows = []
    for vocab_size in vocabs:
        for dim in dims:
            table_VxD = init_table(jax.random.key(0), vocab_size, dim)
            ids_BxT = random_ids(vocab_size, IDS_SHAPE)
            routes = {"gather": lookup, "one-hot": one_hot_lookup}
            if vocab_size * dim <= dense_max_cells:
                routes["Dense"] = dense_lookup
            compiled = {
                name: jax.jit(fn).lower(table_VxD, ids_BxT).compile() for name, fn in routes.items()
            }
            fns = {name: _bind(fn, table_VxD, ids_BxT) for name, fn in compiled.items()}
            expected = np.asarray(fns["gather"]())
            numbers = {"gather": calls_per_sample(fns["gather"], SAMPLE_S)}
            # The gather is timed right before or after each slow call: same load, same moment.
            samples: dict[str, list[float]] = {name: [] for name in fns}
            for r in range(rounds):
                for slow in [name for name in fns if name != "gather"]:
                    if r % 2:
                        samples[slow].append(_time_checked(fns[slow], expected if r == 0 else None))
                    gather_s, _ = interleaved({"gather": fns["gather"]}, 1, numbers)
                    samples["gather"] += gather_s["gather"]
                    if not r % 2:
                        samples[slow].append(_time_checked(fns[slow], expected if r == 0 else None))
            row = {"vocab_size": vocab_size, "dim": dim, "ids_shape": list(IDS_SHAPE)}
            for name, values in samples.items():
                row[f"{name}_ms"] = 1e3 * median(values)
                row[f"{name}_samples"] = len(values)
            row["one_hot_over_gather"] = row["one-hot_ms"] / row["gather_ms"]
            if "Dense_ms" in row:
                row["dense_over_gather"] = row["Dense_ms"] / row["gather_ms"]
            rows.append(row)
            print(_route_line(row), flush=True)
            del table_VxD, fns, compiled
    return rows


def _bind(fn, *args):
    return lambda: fn(*args)


def _time_checked(fn, expected: np.ndarray | None) -> float:
    """Seconds of one call of `fn`; its result is then compared with `expected` if given."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    elapsed = time.perf_counter() - start
    if expected is not None and not np.array_equal(np.asarray(out), expected):
        raise AssertionError("a lookup route disagrees with the gather")
    return elapsed


def _route_line(row: dict) -> str:
    dense = f", Dense {row['Dense_ms']:.1f} ms" if "Dense_ms" in row else ""
    return (
        f"V={row['vocab_size']:6d} D={row['dim']:4d}: gather {row['gather_ms']:.3f} ms, "
        f"one-hot {row['one-hot_ms']:.1f} ms{dense} -> one-hot/gather "
        f"{row['one_hot_over_gather']:.0f}x"
    )


# ----------------------------------------------------------------------------- part 2


def bandwidth(cases, repeats: int, vocab_size: int = GPT2[0]) -> list[dict]:
    """Gather variants and copy references, interleaved, for each ((B, T), D) case."""
    rows = []
    for shape, dim in cases:
        table_VxD = init_table(jax.random.key(0), vocab_size, dim)
        ids_BxT = random_ids(vocab_size, shape)
        out_bytes = int(np.prod(shape)) * dim * 4
        fns = _bandwidth_fns(table_VxD, ids_BxT)
        expected = np.take(np.asarray(table_VxD), np.asarray(ids_BxT), axis=0)
        for name, fn in fns.items():
            out = fn()
            if "copy" not in name and "sorted" not in name and not np.array_equal(out, expected):
                raise AssertionError(f"{name} disagrees with numpy take")
        numbers = {name: calls_per_sample(fn, SAMPLE_S) for name, fn in fns.items()}
        times, faults = interleaved(fns, repeats, numbers)
        seconds = {name: median(values) for name, values in times.items()}
        for name in fns:
            gbps = 2 * out_bytes / seconds[name] / 1e9
            rows.append(
                {
                    "variant": name,
                    "ids_shape": list(shape),
                    "dim": dim,
                    "output_mib": out_bytes / 2**20,
                    "ms": 1e3 * seconds[name],
                    "gb_per_s": gbps,
                    "vs_numpy_copy_reused": seconds[COPY] / seconds[name],
                    "vs_jit_copy_fresh": seconds[JIT_COPY] / seconds[name],
                    "page_faults_per_call": median(faults[name]),
                    "samples": len(times[name]),
                    "calls_per_sample": numbers[name],
                }
            )
        print(
            f"{shape} x {dim}: lookup {2 * out_bytes / seconds[LOOKUP] / 1e9:.1f} GB/s, "
            f"numpy copy {2 * out_bytes / seconds[COPY] / 1e9:.1f} GB/s",
            flush=True,
        )
    return rows


def copy_reference(mib: int, repeats: int) -> list[dict]:
    """The machine's copy bandwidth on a large array: numpy into a reused buffer, jit fresh."""
    src_np = np.ones(mib * 2**20 // 4, np.float32)
    dst_np = np.empty_like(src_np)
    src_jax = jnp.asarray(src_np)
    jit_copy = jax.jit(jnp.copy)
    fns = {COPY: lambda: np.copyto(dst_np, src_np), JIT_COPY: lambda: jit_copy(src_jax)}
    numbers = {name: calls_per_sample(fn, SAMPLE_S) for name, fn in fns.items()}
    times, faults = interleaved(fns, repeats, numbers)
    seconds = {name: median(values) for name, values in times.items()}
    return [
        {
            "variant": name,
            "ids_shape": None,
            "dim": None,
            "output_mib": float(mib),
            "ms": 1e3 * seconds[name],
            "gb_per_s": 2 * src_np.nbytes / seconds[name] / 1e9,
            "vs_numpy_copy_reused": seconds[COPY] / seconds[name],
            "vs_jit_copy_fresh": seconds[JIT_COPY] / seconds[name],
            "page_faults_per_call": median(faults[name]),
            "samples": len(times[name]),
            "calls_per_sample": numbers[name],
        }
        for name in fns
    ]


def _bandwidth_fns(table_VxD: jax.Array, ids_BxT: jax.Array) -> dict:
    """The copy references and gather variants for one case, as argument-free functions."""
    table_np, ids_np = np.asarray(table_VxD), np.asarray(ids_BxT)
    out_shape = (*ids_BxT.shape, table_VxD.shape[1])
    src_np = np.ones(int(np.prod(out_shape)), np.float32)
    dst_np = np.empty_like(src_np)
    src_jax = jnp.asarray(src_np)
    taken_np = np.empty(out_shape, np.float32)
    sorted_BxT = jnp.sort(ids_BxT.ravel()).reshape(ids_BxT.shape)  # rows read in memory order
    jit_copy = jax.jit(jnp.copy)
    gather = jax.jit(lookup)
    no_mask = jax.jit(lambda t, i: t.at[i].get(mode="promise_in_bounds"))
    into = jax.jit(
        lambda o, t, i: jax.lax.dynamic_update_slice(o, lookup(t, i), (0,) * o.ndim),
        donate_argnums=0,
    )
    reused = {"out": jnp.zeros(out_shape, jnp.float32)}

    def gather_into():
        reused["out"] = into(reused["out"], table_VxD, ids_BxT)
        return reused["out"]

    return {
        "numpy copy, reused buffer": lambda: np.copyto(dst_np, src_np),
        "numpy copy, fresh output": lambda: src_np.copy(),
        JIT_COPY: lambda: jit_copy(src_jax),
        LOOKUP: lambda: gather(table_VxD, ids_BxT),
        "XLA gather without NaN fill, fresh output": lambda: no_mask(table_VxD, ids_BxT),
        "jaxembed lookup (jit), IDs sorted": lambda: gather(table_VxD, sorted_BxT),
        DONATED: gather_into,
        "numpy take, fresh output": lambda: np.take(table_np, ids_np, axis=0),
        "numpy take, reused buffer": lambda: np.take(
            table_np, ids_np, axis=0, out=taken_np, mode="clip"
        ),
    }


def hugepage_child(cases, repeats: int) -> list[dict]:
    """Runs part 2 in a child whose glibc malloc asks for transparent huge pages."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "child.json")
        spec = ",".join(f"{b}x{t}x{d}" for (b, t), d in cases)
        env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=1")
        cmd = [sys.executable, os.path.abspath(__file__), "--bandwidth-only", spec]
        cmd += ["--repeats", str(repeats), "--json-out", out]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"huge-page child failed:\n{done.stderr[-2000:]}")
            return []
        with open(out) as f:
            rows = json.load(f)["bandwidth"]
    for row in rows:
        row["variant"] += " [malloc THP]"
    return rows


def _parse_cases(spec: str) -> list[tuple[tuple[int, int], int]]:
    cases = []
    for item in spec.split(","):
        b, t, d = (int(x) for x in item.split("x"))
        cases.append(((b, t), d))
    return cases


# ----------------------------------------------------------------------------- report


def route_table(rows: list[dict]) -> str:
    body = []
    for row in rows:
        dense = row.get("Dense_ms")
        body.append(
            [
                f"{row['vocab_size']:,}",
                row["dim"],
                f"{row['gather_ms']:.3f}",
                f"{row['one-hot_ms']:.1f}",
                "-" if dense is None else f"{dense:.1f}",
                f"{row['one_hot_over_gather']:,.0f}x",
                "-" if dense is None else f"{row['dense_over_gather']:,.0f}x",
            ]
        )
    headers = ["V", "D", "gather ms", "one-hot ms", "Dense ms", "one-hot / gather"]
    return markdown_table([*headers, "Dense / gather"], body)


def bandwidth_table(rows: list[dict]) -> str:
    body = [
        [
            row["variant"],
            "(array)"
            if row["ids_shape"] is None
            else f"{'x'.join(map(str, row['ids_shape']))} x {row['dim']}",
            f"{row['output_mib']:.1f}",
            f"{row['ms']:.2f}",
            f"{row['gb_per_s']:.1f}",
            f"{100 * row['vs_numpy_copy_reused']:.0f}%",
            f"{100 * row['vs_jit_copy_fresh']:.0f}%",
            f"{row['page_faults_per_call']:.0f}",
        ]
        for row in rows
    ]
    headers = ["variant", "IDs x D", "output MiB", "ms", "GB/s (read+write)"]
    headers += ["vs numpy copy (reused)", "vs jit copy (fresh)", "page faults/call"]
    return markdown_table(headers, body)


def targets(routes: list[dict], bw: list[dict]) -> list[dict]:
    found = []
    gpt2 = [r for r in routes if (r["vocab_size"], r["dim"]) == GPT2]
    if gpt2:
        ratio = gpt2[0]["one_hot_over_gather"]
        found.append(
            {
                "target": f"gather >= {SPEEDUP_TARGET:.0f}x faster than one-hot at 50,257 x 768",
                "measured": f"{ratio:,.0f}x",
                "met": ratio >= SPEEDUP_TARGET,
            }
        )
    at_gpt2 = {
        r["variant"]: r
        for r in bw
        if tuple(r["ids_shape"] or ()) == IDS_SHAPE and r["dim"] == GPT2[1]
    }
    checks = (
        (LOOKUP, "vs_numpy_copy_reused", "numpy copy into a reused buffer"),
        (LOOKUP, "vs_jit_copy_fresh", "a jitted copy, also into a fresh output"),
        (DONATED, "vs_numpy_copy_reused", "numpy copy; gather written into a donated buffer"),
    )
    for variant, key, label in checks:
        if variant in at_gpt2:
            row = at_gpt2[variant]
            found.append(
                {
                    "target": f"gather 8x1024x768 >= {BANDWIDTH_TARGET:.0%} of {label}",
                    "measured": f"{row[key]:.0%} ({row['gb_per_s']:.1f} GB/s)",
                    "met": row[key] >= BANDWIDTH_TARGET,
                }
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--rounds", type=int, help="rounds of one-hot/Dense timings (part 1)")
    parser.add_argument("--repeats", type=int, help="interleaved samples per variant (part 2)")
    parser.add_argument("--bandwidth-only", metavar="BxTxD,...", help=argparse.SUPPRESS)
    args = parser.parse_args()
    info = machine_info()
    if args.bandwidth_only:
        rows = bandwidth(_parse_cases(args.bandwidth_only), args.repeats or 9)
        write_json(args.json_out, {"machine": info, "bandwidth": rows})
        return
    print(f"machine: {machine_line(info)}\n", flush=True)
    if args.quick:
        vocabs, dims, rounds = (1_000, GPT2[0]), (64, GPT2[1]), args.rounds or 1
        dense_max_cells = 1_000 * 768  # Dense costs what one-hot costs; quick skips big ones
        cases, repeats = [(IDS_SHAPE, 768)], args.repeats or 7
    else:
        vocabs, dims, rounds = (1_000, 10_000, GPT2[0]), (64, 256, GPT2[1]), args.rounds or 3
        dense_max_cells = GPT2[0] * GPT2[1]
        cases = [((1, 1024), 768), (IDS_SHAPE, 768), ((32, 1024), 768)]
        cases += [(IDS_SHAPE, 200), ((64, 1024), 200)]
        repeats = args.repeats or 11
    routes = compare_routes(vocabs, dims, rounds, dense_max_cells)
    bw = copy_reference(256, repeats) + bandwidth(cases, repeats)
    if not args.quick:
        bw += hugepage_child([(IDS_SHAPE, 768), (IDS_SHAPE, 200)], repeats)
    found = targets(routes, bw)
    print("\n## Lookup routes, jitted, IDs 8 x 1024 (median ms)\n")
    print(route_table(routes))
    print("\n## Gather bandwidth vs copy bandwidth (bytes read + written), V = 50,257\n")
    print(bandwidth_table(bw))
    print("\n## Targets\n")
    print(
        markdown_table(
            ["target", "measured", ""],
            [[t["target"], t["measured"], verdict(t["met"])] for t in found],
        )
    )
    write_json(
        args.json_out,
        {"machine": info, "quick": args.quick, "routes": routes, "bandwidth": bw, "targets": found},
    )


if __name__ == "__main__":
    main()
