"""Demonstration 5: the embedding weight matrix - its size, and how training gives it meaning.

The table has one row per vocabulary token and one column per vector dimension: GPT-2 small's
is 50,257 x 768 = 38,597,376 weights (measured here on a real flax nn.Embed, without allocating
it), the largest GPT-2's has 1,600 columns. It starts random and is learned by backpropagation:
here word2vec (skip-gram) learns a table on gensim's Lee news corpus with jaxembed's training,
and related words end up closer than they started.

    python experiments/05_weight_matrix.py [--corpus FILE ...] [--epochs 20] [--dim 50] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from jaxembed.lecture import LEE

# GPT-2's four sizes and their vector dimension (Radford et al. 2019, table 2).
GPT2_DIMS = {"small": 768, "medium": 1024, "large": 1280, "xl": 1600}


@dataclasses.dataclass(frozen=True)
class Config:
    corpus: tuple[str, ...] = ()  # text files to train on; empty: gensim's Lee corpus
    max_lines: int | None = None  # read only the first lines
    dim: int = LEE.dim  # D of the trained table (the Lee recipe's defaults)
    epochs: int = LEE.epochs  # passes over the corpus
    min_count: int = LEE.min_count  # drop rarer words
    seed: int = LEE.seed  # initial table and sampling
    out: str = "runs/experiments/05_weight_matrix"  # where results.json and figures go


def run(config: Config) -> dict:
    """Sizes GPT-2's tables, then trains a small one; writes results and figures."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxembed.embed import count_params
    from jaxembed.files import write_json
    from jaxembed.lecture import (
        LEE,
        LEE_PAIRS,
        default_corpus,
        learn_and_compare,
        prepare_corpus,
    )
    from jaxembed.tokenize import gpt2_tokenizer

    out = Path(config.out)
    vocab_size = gpt2_tokenizer().n_vocab
    gpt2 = {}
    for name, dim in GPT2_DIMS.items():
        # eval_shape runs nn.Embed's init abstractly: real shapes, no memory.
        shapes = jax.eval_shape(
            nn.Embed(vocab_size, dim).init, jax.random.key(0), jnp.zeros(1, int)
        )
        gpt2[name] = {"shape": shapes["params"]["embedding"].shape, "weights": count_params(shapes)}
        print(
            f"GPT-2 {name:<6} token embedding {vocab_size:,} x {dim:,} = "
            f"{gpt2[name]['weights']:,} weights"
        )

    paths = list(config.corpus) or [default_corpus()]
    corpus_path = out / "corpus.txt"
    tokens = prepare_corpus(paths, corpus_path, config.max_lines)
    print(
        f"\ntraining word2vec on {', '.join(Path(p).name for p in paths)} "
        f"({tokens['tokens']:,} words), {config.epochs} epochs, D = {config.dim}"
    )
    recipe = dataclasses.replace(
        LEE, dim=config.dim, epochs=config.epochs, min_count=config.min_count, seed=config.seed
    )
    learned = learn_and_compare(corpus_path, out, *recipe.configs(), LEE_PAIRS)
    before, after, summary = learned["pairs_before"], learned["pairs_after"], learned["summary"]
    vocab, after_VxD, figures = learned["vocab"], learned["after_VxD"], learned["figures"]

    ranks_before = [p["rank"] for p in before]
    ranks_after = [p["rank"] for p in after]
    results = {
        "gpt2_vocab_size": vocab_size,
        "gpt2": gpt2,
        "gpt2_small_weights": gpt2["small"]["weights"],
        "gpt2_largest_dim": max(GPT2_DIMS.values()),
        "trained_vocab_size": len(vocab),
        "trained_table_shape": after_VxD.shape,
        "epoch_losses": summary["epoch_losses"],
        "train_seconds": summary["train_seconds"],
        "words_per_second": summary["words_per_second"],
        "pairs_before": before,
        "pairs_after": after,
        "median_rank_before": float(np.median(ranks_before)) if before else None,
        "median_rank_after": float(np.median(ranks_after)) if after else None,
        "pairs_closer_in_rank": sum(a < b for a, b in zip(ranks_after, ranks_before, strict=True)),
        "num_pairs": len(before),
        "figures": [f.name for f in figures],
    }
    write_json(out / "results.json", results)
    print(
        f"\nmedian rank {results['median_rank_before']} -> {results['median_rank_after']}; "
        f"{results['pairs_closer_in_rank']} of {len(before)} pairs closer"
    )
    print(f"wrote {out / 'results.json'} and {', '.join(results['figures'])}")
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", nargs="+", default=[], help="text files (default: Lee corpus)")
    parser.add_argument("--max-lines", type=int, default=defaults.max_lines)
    parser.add_argument("--dim", type=int, default=defaults.dim, help="vector size")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--min-count", type=int, default=defaults.min_count)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    args = parser.parse_args(argv)
    args.corpus = tuple(args.corpus)
    run(Config(**vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
