"""Demonstration 2: token IDs and one-hot vectors carry no meaning.

Arbitrary numbers (the lecture's cat 34, book 2.9, tablet -20, kitten -13) put "book" nearer to
"cat" than "kitten" is. One-hot vectors are no better: every pair of distinct words has cosine
similarity 0 and distance sqrt(2), so cat is exactly as far from kitten as from book.

    python experiments/02_ids_carry_no_meaning.py [--words cat kitten ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

# The lecture's arbitrary numbers for four words.
ARBITRARY_NUMBERS = {"cat": 34.0, "book": 2.9, "tablet": -20.0, "kitten": -13.0}


@dataclasses.dataclass(frozen=True)
class Config:
    words: tuple[str, ...] = ("cat", "kitten", "dog", "puppy", "book", "tablet")  # one-hot words
    out: str = "runs/experiments/02_ids_carry_no_meaning"  # where results.json and figures go


def run(config: Config) -> dict:
    """Measures closeness under arbitrary numbers and one-hot vectors; writes results and a figure."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxembed.files import write_json
    from jaxembed.plots import figure, format_matrix, heatmap, save_figure
    from jaxembed.vectors import similarity_matrix
    from jaxembed.vocab import Vocab

    out = Path(config.out)

    # Arbitrary numbers: distance |a - b| says which words are "close".
    number_words = list(ARBITRARY_NUMBERS)
    numbers_N = np.array([ARBITRARY_NUMBERS[w] for w in number_words])
    number_distance_NxN = np.abs(numbers_N[:, None] - numbers_N[None, :])
    nearest = {
        w: number_words[int(np.argsort(number_distance_NxN[i])[1])]
        for i, w in enumerate(number_words)
    }
    print("arbitrary numbers:", ARBITRARY_NUMBERS)
    print("distance |a - b|:\n" + format_matrix(number_distance_NxN, number_words, fmt="{:7.1f}"))
    print(f"nearest word by number: {nearest}  (cat's nearest is {nearest['cat']!r}, not 'kitten')")

    # One-hot: the vector of ID i is row i of the identity matrix.
    vocab = Vocab.from_keys(list(config.words))
    one_hot_VxV = jax.nn.one_hot(vocab.encode(list(config.words)), len(vocab))
    cosine_VxV = np.asarray(similarity_matrix(one_hot_VxV, one_hot_VxV))
    diff_VxVxV = one_hot_VxV[:, None, :] - one_hot_VxV[None, :, :]
    distance_VxV = np.asarray(jnp.linalg.norm(diff_VxVxV, axis=-1))
    off_diagonal = ~np.eye(len(vocab), dtype=bool)
    print("\none-hot vectors:\n" + format_matrix(one_hot_VxV, config.words, fmt="{:4.0f}"))
    print("cosine similarity:\n" + format_matrix(cosine_VxV, config.words))
    print("distance:\n" + format_matrix(distance_VxV, config.words))
    print(
        f"distinct pairs: cosine in [{cosine_VxV[off_diagonal].min():.3f}, "
        f"{cosine_VxV[off_diagonal].max():.3f}], distance in [{distance_VxV[off_diagonal].min():.4f}, "
        f"{distance_VxV[off_diagonal].max():.4f}] (sqrt 2 = {np.sqrt(2):.4f})"
    )

    fig, axes = figure(ncols=3)
    heatmap(
        axes[0],
        number_distance_NxN,
        number_words,
        title="arbitrary numbers: |a - b|",
        vmin=0,
        vmax=None,
        cmap="Greys",
        fmt="{:.1f}",
    )
    heatmap(axes[1], cosine_VxV, config.words, title="one-hot: cosine similarity")
    heatmap(
        axes[2], distance_VxV, config.words, title="one-hot: distance", vmin=0, vmax=2, cmap="Greys"
    )
    figure_path = save_figure(fig, out / "ids_vs_one_hot.png")

    results = {
        "arbitrary_numbers": ARBITRARY_NUMBERS,
        "number_distance": number_distance_NxN,
        "nearest_by_number": nearest,
        "cat_kitten_number_distance": abs(ARBITRARY_NUMBERS["cat"] - ARBITRARY_NUMBERS["kitten"]),
        "cat_book_number_distance": abs(ARBITRARY_NUMBERS["cat"] - ARBITRARY_NUMBERS["book"]),
        "one_hot_words": list(config.words),
        "one_hot_cosine": cosine_VxV,
        "one_hot_distance": distance_VxV,
        "one_hot_offdiag_cosine_max_abs": np.abs(cosine_VxV[off_diagonal]).max(),
        "one_hot_offdiag_distance_min": distance_VxV[off_diagonal].min(),
        "one_hot_offdiag_distance_max": distance_VxV[off_diagonal].max(),
        "figures": [figure_path.name],
    }
    write_json(out / "results.json", results)
    print(f"\nwrote {out / 'results.json'} and {figure_path}")
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", nargs="+", default=list(defaults.words), help="one-hot words")
    parser.add_argument("--out", default=defaults.out, help="output folder")
    args = parser.parse_args(argv)
    if len(set(args.words)) < 2:
        parser.error("--words needs at least two different words")
    run(Config(words=tuple(dict.fromkeys(args.words)), out=args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
