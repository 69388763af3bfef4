"""Quality against batch size: `jaxembed train` at 4k .. 1M examples a step, and the rules that help.

    python benchmarks/batch_quality.py [--objective skipgram cbow] [--batch-sizes 4096 65536 ...]
        [--rules none count] [--json-out FILE]

An accelerator needs far bigger steps than a CPU (64k-1M pairs). Each word2vec step adds up the
gradients of every pair that touches a row, so a frequent word's row gets the sum of thousands of
stale gradients at once in a large batch, where word2vec.c would have moved it a pair at a time.
This trains the same corpus with the same settings (D=200, window 5, negative 5, sample 1e-4,
min-count 5, 5 epochs, as train_vs_gensim.py) at each batch size and each `--rules` value
(`jaxembed train --row-scale`, see jaxembed.objectives), and scores the vectors with gensim's
evaluator (Google analogies restricted to 30,000 words, WordSim-353 Spearman). Target: every
large batch within 1 analogy point and 0.01 Spearman of the smallest batch's run.

A batch is `--batch-size` examples: (centre, context) pairs for skip-gram (`--batch-sizes`,
default 4k, 64k, 256k, 1M), centre words for CBOW (`--cbow-batch-sizes`, default 512, 8k, 32k,
128k centres: each has about 5.5 context words, so about 2.8k, 45k, 180k and 720k pairs). Examples
per call stay those of the smallest batch's 16 steps (`--steps-per-call` scaled down), so a call's
work is the same at every size.
--quick: 1M words, 1 epoch, two sizes.

A batch is drawn from one shuffled chunk of the corpus (`--shuffle-words`), the chunks taken in
corpus order, so on a corpus made of sources one after another (corpus-en-11m: dictionary first,
news last) the chunk width also sets how much the last sources of each epoch weigh in the final
table. `--shuffle-lines SEED` shuffles the corpus copy's lines first (the pairs stay the same:
windows do not cross lines), so that chunk widths compare on a corpus whose order favours none.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time

from _bench import (
    add_common_args,
    machine_info,
    machine_line,
    markdown_table,
    require_file,
    run_measured,
    verdict,
    write_json,
)
from train_vs_gensim import DEFAULT_CORPUS, add_training_args, evaluate_run, prepare_corpus


def train_command(args, corpus, out, objective, batch, rule, smallest) -> list:
    cmd = [sys.executable, "-m", "jaxembed.cli", "train", corpus, "--out", out, "--no-progress"]
    cmd += ["--objective", objective, "--epochs", str(args.epochs), "--batch-size", str(batch)]
    cmd += ["--steps-per-call", str(max(1, 16 * smallest // batch)), "--row-scale", rule]
    for name in ("dim", "window", "negative", "sample", "min_count", "seed"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return cmd + shlex.split(args.jaxembed_args)


def run_one(args, corpus, work, objective, batch, rule, index, smallest) -> dict:
    out = os.path.join(work, f"{index:02d}-{objective}-{batch}-{rule}")
    cmd = train_command(args, corpus, out, objective, batch, rule, smallest)
    print(f"[{time.strftime('%H:%M:%S')}] {shlex.join(cmd)}", flush=True)
    measured = run_measured(cmd, cpus=args.threads, timeout_s=args.timeout)
    row = {"objective": objective, "batch_size": batch, "rule": rule, "command": shlex.join(cmd)}
    row |= {k: measured[k] for k in ("returncode", "wall_s", "peak_rss_mib")}
    run_json = os.path.join(out, "run.json")
    if measured["returncode"] != 0 or not os.path.exists(run_json):
        row["error"] = measured["stderr"][-2000:]
        print(f"  FAILED (exit {measured['returncode']}):\n{row['error']}", flush=True)
        return row
    with open(run_json) as f:
        summary = json.load(f)
    row["words_per_s"] = summary["words_per_second"]
    row["loss"] = summary["loss"]
    scores = evaluate_run(out, ["gensim"])["gensim"]
    row["analogy_accuracy"] = scores["analogy_accuracy"]
    row["wordsim353_spearman"] = scores["wordsim353_spearman"]
    print(
        f"  {row['words_per_s']:,.0f} words/s, loss {row['loss']:.4f}, analogies "
        f"{100 * row['analogy_accuracy']:.2f}%, WordSim-353 {row['wordsim353_spearman']:.3f}",
        flush=True,
    )
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return row


def report(rows: list[dict]) -> list[dict]:
    """Prints the table; each row's gap to the smallest batch of its objective and rule."""
    body = []
    for r in rows:
        base = min(
            (b for b in rows if b["objective"] == r["objective"] and "error" not in b),
            key=lambda b: (b["batch_size"], b["rule"] not in ("none", "auto")),
            default=None,
        )
        if "error" in r or base is None:
            body.append([r["objective"], f"{r['batch_size']:,}", r["rule"], "failed", "", "", ""])
            continue
        r["analogy_gap_points"] = 100 * (r["analogy_accuracy"] - base["analogy_accuracy"])
        r["wordsim_gap"] = r["wordsim353_spearman"] - base["wordsim353_spearman"]
        r["met"] = r["analogy_gap_points"] >= -1.0 and r["wordsim_gap"] >= -0.01
        body.append(
            [
                r["objective"],
                f"{r['batch_size']:,}",
                r["rule"],
                f"{r['words_per_s']:,.0f}",
                f"{r['loss']:.4f}",
                f"{100 * r['analogy_accuracy']:.2f}% ({r['analogy_gap_points']:+.2f})",
                f"{r['wordsim353_spearman']:.3f} ({r['wordsim_gap']:+.3f})",
                verdict(r["met"]),
            ]
        )
    headers = ["objective", "batch", "--row-scale", "words/s", "loss", "analogies (gap)"]
    headers += ["WordSim-353 (gap)", "within 1 point, 0.01"]
    print("\n## Quality against batch size (gaps to the smallest batch, rule none)\n")
    print(markdown_table(headers, body))
    return rows


def shuffle_lines(path: str, seed: int) -> None:
    """Shuffles the lines of the text file `path` in place (Python's random with `seed`)."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    random.Random(seed).shuffle(lines)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--objective", nargs="+", default=["skipgram", "cbow"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="skip-gram pairs a step")
    parser.add_argument("--cbow-batch-sizes", nargs="+", type=int, help="CBOW centres a step")
    parser.add_argument(
        "--rules",
        nargs="+",
        default=["auto"],
        help="--row-scale values to try at the larger batches (the smallest runs none)",
    )
    parser.add_argument(
        "--rules-at-smallest", action="store_true", help="try --rules at the smallest batch too"
    )
    add_training_args(parser)
    parser.add_argument(
        "--shuffle-lines", type=int, metavar="SEED", help="shuffle the corpus's lines first"
    )
    parser.add_argument("--jaxembed-args", default="", help="extra `jaxembed train` flags")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--work-dir", help="keep corpus copy and runs here (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep each run's output directory")
    args = parser.parse_args()
    from gensim.test.utils import datapath

    require_file(args.corpus, "--corpus", datapath("lee_background.cor"))
    if args.epochs is None:
        args.epochs = 1 if args.quick else 5
    if args.max_words is None and args.quick:
        args.max_words = 1_000_000
    if args.batch_sizes is None:
        args.batch_sizes = [4096, 65536] if args.quick else [4096, 65536, 262144, 1 << 20]
    if args.cbow_batch_sizes is None:
        args.cbow_batch_sizes = [512, 8192] if args.quick else [512, 8192, 32768, 131072]
    info = machine_info()
    print(f"machine: {machine_line(info)}", flush=True)
    work = args.work_dir or tempfile.mkdtemp(prefix="batch-quality-")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        corpus, words = prepare_corpus(args.corpus, work, args.max_words)
        if args.shuffle_lines is not None:
            shuffle_lines(corpus, args.shuffle_lines)
        print(f"corpus: {args.corpus} -> {corpus}, {words:,} words, {args.epochs} epoch(s)")
        for objective in args.objective:
            sizes = args.cbow_batch_sizes if objective == "cbow" else args.batch_sizes
            for batch in sizes:
                smallest = batch == min(sizes)
                rules = ["none"] if smallest else args.rules
                if smallest and args.rules_at_smallest:
                    rules += [rule for rule in args.rules if rule != "none"]
                for rule in rules:
                    row = run_one(args, corpus, work, objective, batch, rule, len(rows), min(sizes))
                    rows.append(row)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    report(rows)
    settings = vars(args)
    write_json(args.json_out, {"machine": info, "settings": settings, "runs": rows})


if __name__ == "__main__":
    main()
