"""Evaluation benchmark: jaxembed's evaluate_analogies / evaluate_word_pairs vs gensim's.

    python benchmarks/evaluate_vs_gensim.py [--quick] [--json-out evaluate.json]

Both evaluate the same vectors (GloVe 6B 50-d, 400,000 words, from `load_vectors("glove-6b-50d")`;
gensim gets them through `to_keyed_vectors`) on the sets gensim ships: Google analogies with
restrict_vocab 30,000 and gensim's default 300,000, WordSim-353 and SimLex-999. The results must be
identical - accuracy, every section's correct and incorrect questions, the out-of-vocabulary
counts, the correlations - and the script stops if they are not. It reports the time of the first
call (ours includes jit compilation) and the median of the following calls, alternating between
the two, and gensim's time over ours. gensim answers analogies one at a time (minutes a call
over 300,000 words on 2 busy cores), so those are called once; --quick uses restrict 10,000. gensim caches unit vectors after its first call; they are
dropped before each of its calls, as ours are recomputed on each call.
"""

from __future__ import annotations

import argparse
import time

from _bench import (
    add_common_args,
    machine_info,
    machine_line,
    markdown_table,
    median,
    write_json,
)

from jaxembed.evaluate import benchmark_path, evaluate_analogies, evaluate_word_pairs
from jaxembed.export import to_keyed_vectors
from jaxembed.io import load_vectors


def analogy_case(table_VxD, vocab, kv, restrict: int):
    path = benchmark_path("questions-words")

    def ours():
        return evaluate_analogies(table_VxD, vocab, path, restrict_vocab=restrict)

    def theirs():
        kv.norms = None  # recompute unit vectors, as ours does on every call
        return kv.evaluate_word_analogies(path, restrict_vocab=restrict)

    def compare(a: dict, g) -> dict:
        score, sections = g
        # gensim appends a "Total accuracy" section holding every question again.
        assert sections[-1]["section"] == "Total accuracy", sections[-1]["section"]
        per_section = sections[:-1]
        assert [s["section"] for s in a["sections"]] == [s["section"] for s in per_section]
        for ours_s, theirs_s in zip(a["sections"], per_section, strict=True):
            assert ours_s["correct_questions"] == theirs_s["correct"], ours_s["section"]
            assert ours_s["incorrect_questions"] == theirs_s["incorrect"], ours_s["section"]
        total = sections[-1]
        assert a["correct"] == len(total["correct"]) and a["incorrect"] == len(total["incorrect"])
        assert a["accuracy"] == score, (a["accuracy"], score)
        return {
            "accuracy": a["accuracy"],
            "gensim_accuracy": float(score),
            "correct": a["correct"],
            "attempted": a["attempted"],
            "abs_differences": {"accuracy": 0.0},
        }

    return f"analogies (questions-words), restrict {restrict:,}", ours, theirs, compare


def pairs_case(table_VxD, vocab, kv, name: str):
    path = benchmark_path(name)

    def ours():
        return evaluate_word_pairs(table_VxD, vocab, path)

    def theirs():
        kv.norms = None
        return kv.evaluate_word_pairs(path)

    def compare(a: dict, g) -> dict:
        pearson, spearman, oov_ratio = g
        differences = {
            "pearson": abs(a["pearson"][0] - pearson[0]),
            "spearman": abs(a["spearman"][0] - spearman[0]),
            "oov_ratio": abs(a["oov_ratio"] - oov_ratio),
        }
        # Cosines from XLA and from numpy may differ in the last float32 bit (Pearson moves by
        # ~1e-8), but the ranks, and so Spearman, must not; oov_ratio is the same fraction.
        assert differences["spearman"] == 0.0, differences
        assert differences["pearson"] < 1e-6 and differences["oov_ratio"] < 1e-9, differences
        return {
            "spearman": a["spearman"][0],
            "gensim_spearman": float(spearman[0]),
            "pearson": a["pearson"][0],
            "gensim_pearson": float(pearson[0]),
            "abs_differences": differences,
            "pairs": a["pairs"],
            "oov_ratio": a["oov_ratio"],
        }

    return f"word pairs ({name}), restrict 300,000", ours, theirs, compare


def run_case(label, ours, theirs, compare, gensim_calls: int, warm_calls: int) -> dict:
    """Our first call (compiles), then gensim's calls alternating with our warm calls."""
    start = time.perf_counter()
    result = ours()
    first_s = time.perf_counter() - start
    times = {"gensim": [], "jaxembed": []}
    for r in range(max(gensim_calls, warm_calls)):
        order = [("gensim", theirs, gensim_calls), ("jaxembed", ours, warm_calls)]
        for name, fn, n in order if r % 2 == 0 else order[::-1]:
            if r < n:
                start = time.perf_counter()
                out = fn()
                times[name].append(time.perf_counter() - start)
                if name == "gensim" and r == 0:
                    row = {"case": label, **compare(result, out)}
    row["jaxembed_first_s"] = first_s
    for name in ("gensim", "jaxembed"):
        row[f"{name}_s"] = median(times[name])
        row[f"{name}_calls"] = len(times[name])
    row["speedup"] = row["gensim_s"] / row["jaxembed_s"]
    row["exact"] = all(v == 0.0 for v in row["abs_differences"].values())
    print(
        f"{label}: same results; gensim {row['gensim_s']:.3f} s, jaxembed {row['jaxembed_s']:.3f} s "
        f"-> {row['speedup']:.1f}x",
        flush=True,
    )
    return row


def _sameness(row: dict) -> str:
    if row["exact"]:
        return "identical"
    off = {k: v for k, v in row["abs_differences"].items() if v}
    return "identical except " + ", ".join(f"{k} (off by {v:.0e})" for k, v in off.items())


def result_text(row: dict) -> str:
    if "accuracy" in row:
        return f"{100 * row['accuracy']:.2f}% ({row['correct']} / {row['attempted']})"
    return f"Spearman {row['spearman']:.4f}, Pearson {row['pearson']:.4f} ({row['pairs']} pairs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--vectors", default="glove-6b-50d", help="a vector file or name")
    args = parser.parse_args()
    info = machine_info()
    print(f"machine: {machine_line(info)}\n", flush=True)
    start = time.perf_counter()
    table_VxD, vocab = load_vectors(args.vectors)
    kv = to_keyed_vectors(table_VxD, vocab)
    print(f"loaded {args.vectors}: {table_VxD.shape} in {time.perf_counter() - start:.1f} s")
    if args.quick:  # gensim answers ~250 analogies/s per 10,000 candidate words here
        plan = [(10_000, 1, 2)]
        pair_calls = (3, 3)
    else:
        plan = [(30_000, 3, 3), (300_000, 1, 1)]
        pair_calls = (5, 5)
    rows = []
    for restrict, gensim_calls, warm_calls in plan:
        case = analogy_case(table_VxD, vocab, kv, restrict)
        rows.append(run_case(*case, gensim_calls, warm_calls))
    for name in ("wordsim353", "simlex999"):
        rows.append(run_case(*pairs_case(table_VxD, vocab, kv, name), *pair_calls))
    body = [
        [
            row["case"],
            result_text(row),
            _sameness(row),
            f"{row['jaxembed_first_s']:.3f}",
            f"{row['gensim_s']:.3f}",
            f"{row['jaxembed_s']:.3f}",
            f"{row['speedup']:.1f}x",
        ]
        for row in rows
    ]
    headers = ["case", "result (both)", "same as gensim", "jaxembed 1st call s"]
    headers += ["gensim s (median)", "jaxembed s (median, warm)", "gensim / jaxembed"]
    print(f"\n## Evaluation on {args.vectors} ({len(vocab):,} words), same vectors\n")
    print(markdown_table(headers, body))
    write_json(
        args.json_out,
        {"machine": info, "quick": args.quick, "vectors": args.vectors, "cases": rows},
    )


if __name__ == "__main__":
    main()
