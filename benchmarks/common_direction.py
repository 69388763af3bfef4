"""How much of a learned table's quality its common direction hides: run directories side by side.

    python benchmarks/common_direction.py RUN_DIR [RUN_DIR ...] [--json-out common.json]

RUN_DIR: a `jaxembed train --out` directory, or any file `jaxembed.io.load_vectors` reads.

Skip-gram with negative sampling leaves every word vector with a share of one common direction
(Mimno & Thompson, "The strange geometry of skip-gram with negative sampling", 2017). It inflates
the cosine of unrelated words, which costs WordSim-353 more than analogies (3CosAdd cancels most of
it). For each `jaxembed train` output this prints the common direction's size (the norm of the mean
unit vector of the words ranked 100-5,000; 0 for none, 1 for all one vector), then analogies
(restrict 30,000) and WordSim-353 as the table is, and again with the mean of the 30,000 most
frequent rows taken off every row. The scores are jaxembed's evaluators, identical to gensim's.
Section 7 of BENCHMARKS.md uses it to tell a large batch's WordSim-353 loss apart from its geometry.
"""

from __future__ import annotations

import argparse

import numpy as np
from _bench import markdown_table, write_json

from jaxembed.evaluate import benchmark_path, evaluate_analogies, evaluate_word_pairs
from jaxembed.io import load_vectors

RANKS = (100, 5000)  # the rows whose common direction is measured: frequent, not the stopwords
MEAN_ROWS = 30000  # the rows whose mean is taken off (the analogies' restrict_vocab)


def common_direction(table_VxD: np.ndarray, ranks: tuple[int, int] = RANKS) -> float:
    """Norm of the mean unit vector of rows ranks[0]:ranks[1] (0: no common direction, 1: one)."""
    rows = np.asarray(table_VxD[ranks[0] : ranks[1]], np.float64)
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return float(np.linalg.norm(unit.mean(axis=0)))


def without_mean(table_VxD: np.ndarray, rows: int = MEAN_ROWS) -> np.ndarray:
    """The table with the mean of its first `rows` rows (the most frequent words) taken off."""
    table = np.asarray(table_VxD, np.float32)
    return table - table[:rows].mean(axis=0, dtype=np.float64).astype(np.float32)


def scores(table_VxD: np.ndarray, vocab) -> tuple[float, float]:
    """(analogy accuracy, restrict 30,000; WordSim-353 Spearman)."""
    analogies = evaluate_analogies(table_VxD, vocab, benchmark_path("questions-words"), 30000)
    wordsim = evaluate_word_pairs(table_VxD, vocab, benchmark_path("wordsim353"))
    return analogies["accuracy"], float(wordsim["spearman"][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="`jaxembed train` output directories (or word-vector files)"
    )
    parser.add_argument("--json-out", help="also write the results as JSON to this file")
    args = parser.parse_args()
    results = []
    for run in args.runs:
        table, vocab = load_vectors(run)
        analogies, wordsim = scores(table, vocab)
        analogies_c, wordsim_c = scores(without_mean(table), vocab)
        results.append(
            {
                "run": run,
                "common_direction": common_direction(table),
                "analogies": analogies,
                "wordsim353": wordsim,
                "analogies_without_mean": analogies_c,
                "wordsim353_without_mean": wordsim_c,
            }
        )
    headers = ["run", "common direction", "analogies", "WordSim-353"]
    headers += ["without the mean: analogies", "WordSim-353"]
    print(
        markdown_table(
            headers,
            [
                [
                    r["run"],
                    f"{r['common_direction']:.3f}",
                    f"{100 * r['analogies']:.2f}%",
                    f"{r['wordsim353']:.3f}",
                    f"{100 * r['analogies_without_mean']:.2f}%",
                    f"{r['wordsim353_without_mean']:.3f}",
                ]
                for r in results
            ],
        )
    )
    write_json(args.json_out, {"runs": results})


if __name__ == "__main__":
    main()
