"""Demonstration 8 (the lecture's "next"): the model's input is token + position embeddings.

A token's vector ignores where the token stands: "dog bites man" and "man bites dog" hold the
same vectors. Adding one vector per position (learned absolute positions as in GPT-2, or fixed
sinusoids) tells them apart. Here a text is cut into (B, T) windows of GPT-2 IDs, embedded with a
50,257 x D token table and a T x D position table, giving the (B, T, D) input of a GPT.

    python experiments/08_positions.py [--text PATH] [--batch-size 8] [--context 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Config:
    text: str | None = None  # a text file (.xz/.gz/.bz2 too); None: gensim's Lee news corpus
    max_chars: int = 20_000  # read only the start of the text
    batch_size: int = 8  # B, windows per batch
    context: int = 4  # T, tokens per window (GPT-2: 1,024)
    stride: int = 4  # step between window starts (= T: no overlap)
    dim: int = 256  # D, vector size (GPT-2 small: 768)
    seed: int = 123  # seed of the random tables
    out: str = "runs/experiments/08_positions"  # where results.json and figures go


def run(config: Config) -> dict:
    """Embeds the first batch with learned and sinusoidal positions; writes results and figures."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxembed.embed import init_table, lookup
    from jaxembed.files import open_text, write_json
    from jaxembed.lecture import default_corpus
    from jaxembed.plots import figure, heatmap, save_figure
    from jaxembed.positions import (
        init_positions,
        input_embeddings,
        iter_batches,
        sinusoidal_positions,
        sliding_windows,
    )
    from jaxembed.tokenize import gpt2_tokenizer
    from jaxembed.vectors import similarity_matrix

    out = Path(config.out)
    encoding = gpt2_tokenizer()
    source = config.text or default_corpus()
    with open_text(source) as f:
        text = f.read(config.max_chars)
    ids_N = encoding.encode_ordinary(text)
    inputs_BxT, targets_BxT = sliding_windows(ids_N, config.context, config.stride)
    inputs_bxT, targets_bxT = next(iter_batches(inputs_BxT, targets_BxT, config.batch_size))
    print(f"text: {source} ({len(text):,} characters) -> {len(ids_N):,} GPT-2 IDs")
    print(
        f"sliding windows: {inputs_BxT.shape[0]} of {config.context}; first batch {inputs_bxT.shape}"
    )
    print(f"inputs:\n{inputs_bxT}\ntargets (inputs shifted by one):\n{targets_bxT}")
    print(
        f"first window: {encoding.decode(inputs_bxT[0].tolist())!r} -> "
        f"{encoding.decode(targets_bxT[0].tolist())!r}"
    )

    key_tokens, key_positions = jax.random.split(jax.random.key(config.seed))
    token_table_VxD = init_table(key_tokens, encoding.n_vocab, config.dim)
    learned_LxD = init_positions(key_positions, config.context, config.dim)
    sinusoidal_LxD = sinusoidal_positions(config.context, config.dim)
    token_vectors_bxTxD = lookup(token_table_VxD, inputs_bxT)
    x_learned_bxTxD = input_embeddings(token_table_VxD, learned_LxD, inputs_bxT)
    x_sinusoidal_bxTxD = input_embeddings(token_table_VxD, sinusoidal_LxD, inputs_bxT)
    print(f"\ntoken table {token_table_VxD.shape}, position table {learned_LxD.shape}")
    print(
        f"token embeddings {token_vectors_bxTxD.shape} + position embeddings {learned_LxD.shape}"
        f" = input embeddings {x_learned_bxTxD.shape}"
    )

    # Word order: " dog" gets the same token vector first in " dog bites man" and last in
    # " man bites dog"; adding position vectors makes the two differ. (The leading space makes each
    # word the same GPT-2 token in both orders.)
    dog_first, dog_last = (
        encoding.encode_ordinary(s) for s in (" dog bites man", " man bites dog")
    )
    same_tokens = sorted(dog_first) == sorted(dog_last)
    positions_T = sinusoidal_positions(len(dog_first), config.dim)
    token_only = [lookup(token_table_VxD, ids) for ids in (dog_first, dog_last)]
    with_positions = [
        input_embeddings(token_table_VxD, positions_T, ids) for ids in (dog_first, dog_last)
    ]
    dog_token_equal = bool(jnp.array_equal(token_only[0][0], token_only[1][-1]))
    dog_input_equal = bool(jnp.allclose(with_positions[0][0], with_positions[1][-1], atol=1e-6))
    print(
        f"\n' dog' first in ' dog bites man' and last in ' man bites dog': same token vector "
        f"{dog_token_equal}; same vector once positions are added {dog_input_equal}"
    )

    picture_LxD = sinusoidal_positions(64, min(config.dim, 128))
    fig, axes = figure(ncols=2, panel_inches=(5.5, 4.6))
    heatmap(
        axes[0],
        picture_LxD,
        [str(p) if p % 8 == 0 else "" for p in range(64)],
        [str(j) if j % 16 == 0 else "" for j in range(picture_LxD.shape[1])],
        title="sinusoidal position embeddings (position x dim)",
        annotate=False,
        aspect="auto",
    )
    heatmap(
        axes[1],
        similarity_matrix(picture_LxD, picture_LxD),
        [str(p) if p % 8 == 0 else "" for p in range(64)],
        title="cosine similarity between positions",
        annotate=False,
    )
    figure_path = save_figure(fig, out / "sinusoidal_positions.png")

    results = {
        "text": str(source),
        "num_ids": len(ids_N),
        "windows_shape": inputs_BxT.shape,
        "batch_inputs": inputs_bxT,
        "batch_targets": targets_bxT,
        "targets_are_inputs_shifted": bool(np.array_equal(inputs_bxT[:, 1:], targets_bxT[:, :-1])),
        "token_table_shape": token_table_VxD.shape,
        "position_table_shape": learned_LxD.shape,
        "token_embeddings_shape": token_vectors_bxTxD.shape,
        "input_embeddings_shape": x_learned_bxTxD.shape,
        "sinusoidal_input_embeddings_shape": x_sinusoidal_bxTxD.shape,
        "inputs_minus_tokens_equal_positions": bool(
            jnp.allclose(x_learned_bxTxD - token_vectors_bxTxD, learned_LxD[None], atol=1e-6)
        ),
        "word_order": {
            "same_tokens": same_tokens,
            "dog_token_vector_same_at_both_positions": dog_token_equal,
            "dog_input_vector_same_at_both_positions": dog_input_equal,
        },
        "figures": [figure_path.name],
    }
    write_json(out / "results.json", results)
    print(f"\nwrote {out / 'results.json'} and {figure_path}")
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--text", default=defaults.text, help="text file (default: gensim's lee_background.cor)"
    )
    parser.add_argument("--max-chars", type=int, default=defaults.max_chars)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="B")
    parser.add_argument("--context", type=int, default=defaults.context, help="T")
    parser.add_argument("--stride", type=int, default=defaults.stride)
    parser.add_argument("--dim", type=int, default=defaults.dim, help="D")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    run(Config(**vars(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
