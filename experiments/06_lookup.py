"""Demonstration 6: the embedding layer is a lookup table.

"quick fox is in the house": alphabetical IDs fox 0, house 1, in 2, is 3, quick 4, the 5. The
input "in is the house" is IDs [2, 3, 5, 1]. A random 6 x 3 table (flax's nn.Embed); the vector
of ID 3 is row 3, and the vectors of [2, 3, 5, 1] are those four rows: a 4 x 3 array.

    python experiments/06_lookup.py [--dim 3] [--seed 123] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Config:
    sentence: str = "quick fox is in the house"  # the lecture's vocabulary
    inputs: str = "in is the house"  # the lecture's input: IDs [2, 3, 5, 1]
    dim: int = 3  # vector size (the lecture's output_dim)
    seed: int = 123  # seed of the random table (the lecture's torch.manual_seed(123))
    out: str = "runs/experiments/06_lookup"  # where results.json and figures go


def run(config: Config) -> dict:
    """Builds the vocabulary and a random nn.Embed table, looks rows up; writes results and a figure."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxembed.embed import embed_module, lookup
    from jaxembed.files import write_json
    from jaxembed.plots import figure, heatmap, save_figure
    from jaxembed.tokenize import split_words
    from jaxembed.vocab import Vocab

    out = Path(config.out)
    np.set_printoptions(precision=4, suppress=True)
    vocab = Vocab.build(split_words(config.sentence), order="alphabetical")
    input_ids_N = vocab.encode(split_words(config.inputs))
    print(f"vocabulary: {dict(vocab.key_to_index)}")
    print(f"input {config.inputs!r} -> IDs {input_ids_N.tolist()}")

    # nn.Embed draws its table at init, as torch.nn.Embedding(6, 3) does in the lecture.
    layer = nn.Embed(num_embeddings=len(vocab), features=config.dim)
    variables = layer.init(jax.random.key(config.seed), jnp.asarray(input_ids_N))
    table_VxD = variables["params"]["embedding"]
    print(f"\nembedding weight matrix ({len(vocab)} x {config.dim}):\n{np.asarray(table_VxD)}")

    row_3 = layer.apply(variables, jnp.asarray(3))
    print(f"\nvector of ID 3 ({vocab.index_to_key[3]!r}): {np.asarray(row_3)} = row 3")
    vectors_NxD = layer.apply(variables, jnp.asarray(input_ids_N))
    print(
        f"vectors of IDs {input_ids_N.tolist()} ({vectors_NxD.shape[0]} x {vectors_NxD.shape[1]}):"
    )
    print(np.asarray(vectors_NxD))

    # The same rows through jaxembed's checked lookup and its nn.Embed wrapper.
    module, module_variables = embed_module(table_VxD)
    same_as_rows = bool(jnp.array_equal(vectors_NxD, np.asarray(table_VxD)[input_ids_N]))
    same_as_lookup = bool(jnp.array_equal(vectors_NxD, lookup(table_VxD, input_ids_N)))
    same_as_module = bool(
        jnp.array_equal(vectors_NxD, module.apply(module_variables, jnp.asarray(input_ids_N)))
    )
    print(
        f"equal to rows {input_ids_N.tolist()} of the table: {same_as_rows}; "
        f"to jaxembed.lookup: {same_as_lookup}; to embed_module: {same_as_module}"
    )

    fig, axes = figure(ncols=2, panel_inches=(4.0, 3.6))
    row_labels = [f"{i} {w}" for i, w in enumerate(vocab.index_to_key)]
    columns = [f"dim {j}" for j in range(config.dim)]
    limit = float(jnp.abs(table_VxD).max())  # one colour scale for both panels
    heatmap(
        axes[0],
        table_VxD,
        row_labels,
        columns,
        title="embedding table (V x D)",
        vmin=-limit,
        vmax=limit,
    )
    picked = [f"{i} {vocab.index_to_key[i]}" for i in input_ids_N]
    heatmap(
        axes[1],
        vectors_NxD,
        picked,
        columns,
        title=f"lookup of IDs {input_ids_N.tolist()}",
        vmin=-limit,
        vmax=limit,
    )
    figure_path = save_figure(fig, out / "lookup.png")

    results = {
        "vocab": dict(vocab.key_to_index),
        "input_tokens": split_words(config.inputs),
        "input_ids": input_ids_N,
        "table": table_VxD,
        "table_shape": table_VxD.shape,
        "row_3": row_3,
        "vectors": vectors_NxD,
        "vectors_shape": vectors_NxD.shape,
        "vectors_equal_table_rows": same_as_rows,
        "vectors_equal_lookup": same_as_lookup,
        "vectors_equal_embed_module": same_as_module,
        "figures": [figure_path.name],
    }
    write_json(out / "results.json", results)
    print(f"\nwrote {out / 'results.json'} and {figure_path}")
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentence", default=defaults.sentence, help="text of the vocabulary")
    parser.add_argument("--inputs", default=defaults.inputs, help="words to look up")
    parser.add_argument("--dim", type=int, default=defaults.dim, help="vector size")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    run(Config(**vars(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
