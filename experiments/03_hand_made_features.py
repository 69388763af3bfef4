"""Demonstration 3: hand-made feature vectors capture meaning.

dog, cat, apple and banana scored from 0 (no) to 1 (yes) on the lecture's five questions. Words
that answer alike get similar vectors: dog~cat and apple~banana are close, dog and banana far.

    python experiments/03_hand_made_features.py [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

# The lecture's five questions, and our 0-1 answers for its four words (jaxembed.lecture).
from jaxembed.lecture import FEATURES, WORD_FEATURES  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Config:
    out: str = "runs/experiments/03_hand_made_features"  # where results.json and figures go


def run(config: Config) -> dict:
    """Compares the feature vectors by cosine similarity; writes results and figures."""
    import jax.numpy as jnp
    import numpy as np

    from jaxembed.files import write_json
    from jaxembed.plots import (
        figure,
        format_matrix,
        heatmap,
        pca_2d,
        save_figure,
        scatter_words,
    )
    from jaxembed.vectors import similarity_matrix

    out = Path(config.out)
    words = list(WORD_FEATURES)
    vectors_NxF = jnp.asarray([WORD_FEATURES[w] for w in words], dtype=jnp.float32)
    cosine_NxN = np.asarray(similarity_matrix(vectors_NxF, vectors_NxF))
    index = {w: i for i, w in enumerate(words)}

    def cos(a: str, b: str) -> float:
        return float(cosine_NxN[index[a], index[b]])

    print("feature vectors:\n" + format_matrix(vectors_NxF, words, FEATURES, fmt="{:.2f}"))
    print("\ncosine similarity:\n" + format_matrix(cosine_NxN, words))
    print(
        f"\ncos(dog, cat) = {cos('dog', 'cat'):.3f} > cos(dog, banana) = {cos('dog', 'banana'):.3f}"
        f"; cos(apple, banana) = {cos('apple', 'banana'):.3f}"
    )

    fig, axes = figure(ncols=3)
    heatmap(
        axes[0],
        vectors_NxF,
        words,
        FEATURES,
        title="hand-made feature vectors",
        vmin=0,
        vmax=1,
        cmap="Greens",
    )
    heatmap(axes[1], cosine_NxN, words, title="cosine similarity")
    points_Nx2 = pca_2d(vectors_NxF)
    scatter_words(
        axes[2], points_Nx2, words, title="2-D projection (PCA)", colors=["C0", "C0", "C2", "C2"]
    )
    figure_path = save_figure(fig, out / "hand_made_features.png")

    results = {
        "features": list(FEATURES),
        "words": words,
        "vectors": vectors_NxF,
        "cosine": cosine_NxN,
        "cos_dog_cat": cos("dog", "cat"),
        "cos_dog_banana": cos("dog", "banana"),
        "cos_apple_banana": cos("apple", "banana"),
        "cos_cat_apple": cos("cat", "apple"),
        "points_2d": points_Nx2,
        "figures": [figure_path.name],
    }
    write_json(out / "results.json", results)
    print(f"\nwrote {out / 'results.json'} and {figure_path}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=Config().out, help="output folder")
    run(Config(**vars(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
