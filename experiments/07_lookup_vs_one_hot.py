"""Demonstration 7: lookup equals a linear layer on one-hot inputs, at a fraction of the cost.

IDs [2, 3, 1], vocabulary 4, dimension 5: one_hot(ids) (3 x 4) @ table (4 x 5), a bias-free
flax Dense whose kernel is the table, and the lookup all give exactly the same 3 x 5 vectors (and
the same gradients). Then the cost as the vocabulary grows to GPT-2's 50,257: the one-hot product
spends 2 * N * V * D FLOPs, nearly all multiplying zeros; the lookup copies N * D numbers.

    python experiments/07_lookup_vs_one_hot.py [--tokens 1024] [--dim 768] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Config:
    ids: tuple[int, ...] = (2, 3, 1)  # the lecture's IDs
    vocab_size: int = 4  # the lecture's vocabulary size
    dim: int = 5  # the lecture's vector size
    sweep_vocab_sizes: tuple[int, ...] = (256, 1024, 4096, 16384, 50257)  # up to GPT-2's
    sweep_dim: int = 768  # GPT-2 small's vector size
    tokens: int = 1024  # IDs looked up per call (one GPT-2 context)
    repeats: int = 3  # timed one-hot calls per size (lookups: 10x); the best is kept
    seed: int = 0  # seed of the tables and IDs
    out: str = "runs/experiments/07_lookup_vs_one_hot"  # where results.json and figures go


def run(config: Config) -> dict:
    """Compares the three routes on the lecture's example, then times them; writes results."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxembed.embed import dense_lookup, init_table, lookup, one_hot_lookup
    from jaxembed.files import write_json
    from jaxembed.plots import figure, line_plot, save_figure

    out = Path(config.out)
    np.set_printoptions(precision=4, suppress=True)
    key_table, key_sweep = jax.random.split(jax.random.key(config.seed))

    table_VxD = init_table(key_table, config.vocab_size, config.dim)
    ids_N = jnp.asarray(config.ids)
    one_hot_NxV = jax.nn.one_hot(ids_N, config.vocab_size)
    by_lookup = lookup(table_VxD, ids_N)
    by_one_hot = one_hot_lookup(table_VxD, ids_N)
    by_dense = dense_lookup(table_VxD, ids_N)
    print(f"IDs {list(config.ids)}, one-hot ({one_hot_NxV.shape[0]} x {one_hot_NxV.shape[1]}):")
    print(np.asarray(one_hot_NxV))
    print(f"table ({config.vocab_size} x {config.dim}):\n{np.asarray(table_VxD)}")
    print(f"one_hot @ table:\n{np.asarray(by_one_hot)}")
    print(f"lookup:\n{np.asarray(by_lookup)}")
    print(f"Dense(use_bias=False, kernel=table):\n{np.asarray(by_dense)}")
    equal = {
        "one_hot_equals_lookup": bool(jnp.array_equal(by_one_hot, by_lookup)),
        "dense_equals_lookup": bool(jnp.array_equal(by_dense, by_lookup)),
    }

    # Gradients with respect to the table agree too: the one-hot route's gradient is one_hot.T @ g.
    weights_NxD = jax.random.normal(key_sweep, by_lookup.shape)

    def loss(route, table):
        return jnp.sum(route(table, ids_N) * weights_NxD)

    grad_lookup = jax.grad(lambda t: loss(lookup, t))(table_VxD)
    grad_one_hot = jax.grad(lambda t: loss(one_hot_lookup, t))(table_VxD)
    equal["gradients_equal"] = bool(jnp.allclose(grad_lookup, grad_one_hot, rtol=1e-6, atol=1e-6))
    print(f"exactly equal: {equal}")

    sweep = _sweep(config, key_sweep)
    print(
        f"\ncost for {config.tokens} IDs, D = {config.sweep_dim} (best of {config.repeats} calls, lookup {10 * config.repeats}):"
    )
    print(
        f"{'V':>7} {'one-hot FLOPs':>14} {'lookup FLOPs':>13} {'one-hot ms':>11} {'lookup ms':>10}"
    )
    for row in sweep:
        print(
            f"{row['vocab_size']:>7} {row['one_hot_flops']:>14.3g} {row['lookup_flops']:>13.3g} "
            f"{row['one_hot_seconds'] * 1e3:>11.2f} {row['lookup_seconds'] * 1e3:>10.3f}"
        )
    sizes = [row["vocab_size"] for row in sweep]
    fig, axes = figure(ncols=2)
    line_plot(
        axes[0],
        sizes,
        {
            "one-hot @ table (XLA count)": [row["one_hot_flops"] for row in sweep],
            "lookup (XLA count)": [max(row["lookup_flops"], 1.0) for row in sweep],
        },
        "vocabulary size V",
        "FLOPs per call",
        title=f"{config.tokens} IDs, D = {config.sweep_dim}",
        log="xy",
    )
    line_plot(
        axes[1],
        sizes,
        {
            "one-hot @ table": [row["one_hot_seconds"] * 1e3 for row in sweep],
            "lookup": [row["lookup_seconds"] * 1e3 for row in sweep],
        },
        "vocabulary size V",
        "milliseconds per call",
        title=f"measured on {jax.devices()[0].platform}",
        log="xy",
    )
    figure_path = save_figure(fig, out / "lookup_vs_one_hot_cost.png")

    results = {
        "ids": list(config.ids),
        "one_hot": one_hot_NxV,
        "table": table_VxD,
        "lookup": by_lookup,
        "one_hot_product": by_one_hot,
        "dense": by_dense,
        **equal,
        "sweep": sweep,
        "sweep_tokens": config.tokens,
        "sweep_dim": config.sweep_dim,
        "device": str(jax.devices()[0]),
        "figures": [figure_path.name],
    }
    write_json(out / "results.json", results)
    print(f"\nwrote {out / 'results.json'} and {figure_path}")
    return results


def _sweep(config: Config, key) -> list[dict]:
    """FLOPs (formula and XLA's count) and best times of both routes for each vocabulary size."""
    import jax
    import numpy as np

    from jaxembed.embed import lookup, one_hot_lookup

    rows = []
    n, d = config.tokens, config.sweep_dim
    for vocab_size in config.sweep_vocab_sizes:
        key_table, key_ids, key = jax.random.split(key, 3)
        table_VxD = jax.random.normal(key_table, (vocab_size, d))
        ids_N = jax.random.randint(key_ids, (n,), 0, vocab_size)
        row = {"vocab_size": vocab_size, "formula_one_hot_flops": 2 * n * vocab_size * d}
        for name, route in (("one_hot", one_hot_lookup), ("lookup", lookup)):
            compiled = jax.jit(route).lower(table_VxD, ids_N).compile()
            row[f"{name}_flops"] = float(compiled.cost_analysis().get("flops", float("nan")))
            compiled(table_VxD, ids_N).block_until_ready()  # warm up
            times = []
            # The lookup takes microseconds: more calls make its best time stable.
            for _ in range(config.repeats * (1 if name == "one_hot" else 10)):
                start = time.perf_counter()
                compiled(table_VxD, ids_N).block_until_ready()
                times.append(time.perf_counter() - start)
            row[f"{name}_seconds"] = float(np.min(times))  # best of: least disturbed
        row["useful_fraction"] = 1 / vocab_size  # of the one-hot products, only 1 in V is not * 0
        row["time_ratio"] = row["one_hot_seconds"] / row["lookup_seconds"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--vocab-sizes",
        type=int,
        nargs="+",
        default=defaults.sweep_vocab_sizes,
        dest="sweep_vocab_sizes",
        help="vocabulary sizes of the cost sweep",
    )
    parser.add_argument(
        "--dim",
        type=int,
        default=defaults.sweep_dim,
        dest="sweep_dim",
        help="vector size of the cost sweep",
    )
    parser.add_argument("--tokens", type=int, default=defaults.tokens, help="IDs per call")
    parser.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="timed calls per size"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    args = parser.parse_args(argv)
    args.sweep_vocab_sizes = tuple(args.sweep_vocab_sizes)
    run(Config(**vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
