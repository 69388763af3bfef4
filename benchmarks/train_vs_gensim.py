"""Training benchmark: `jaxembed train` vs gensim, fastText and word2vec.c, same corpus, alternating.

    python benchmarks/train_vs_gensim.py [--quick] [--objective skipgram cbow] [--json-out FILE]
        [--peers gensim fasttext word2vec.c] [--word2vec-c PATH]

Peers: gensim `Word2Vec(..., workers=threads)`; fastText (PyPI `fasttext`, the `bench` extra),
`train_unsupervised(..., minn=0, maxn=0, thread=threads)`, which makes it plain word2vec without
subword n-grams; the original word2vec.c when `--word2vec-c` names a binary, built from
github.com/tmikolov/word2vec with `eof = 0;` added where each epoch restarts (its issue #47:
threaded runs otherwise train the later epochs on nothing) by `gcc -O3 -march=native
-funroll-loops -pthread word2vec.c -o word2vec -lm`. Each tool uses its own default learning rate:
gensim 0.025 (both objectives), word2vec.c 0.025 skip-gram / 0.05 CBOW, fastText 0.05, jaxembed
0.025 skip-gram / 0.05 CBOW. Words/s are each tool's training clock where it has one (gensim,
jaxembed); fastText's are the training words over its `train_unsupervised` call and word2vec.c's
over its whole process (both build their vocabulary inside that time, so they are a little
understated; word2vec.c's own last "Words/thread/sec" report, times threads, is recorded beside
it as own_words_per_second). CPU utilisation is (user + system) / wall of each process.
fastText 0.9.3 stops with "Encountered NaN" on some corpora of under ~100k words (seen on gensim's
Lee corpus at every setting tried): such a run is reported as failed, as any failing run is.

Each run is its own subprocess pinned to the same `--threads` cores (gensim gets workers=threads),
so its peak RSS (ru_maxrss from wait4) and wall time are its own. The two tools alternate: within
a repeat the one that went second last time goes first. Both read the same plain-text corpus (the
.xz is decompressed once beforehand); jaxembed runs through its command line, `python -m
jaxembed.cli train`, and gensim through `Word2Vec(...)` + `build_vocab` + `train` in a worker.

Reported per run: training words/s (raw corpus words x epochs / training seconds, each tool's own
clock around its training loop: jaxembed's includes jit compilation, gensim's excludes vocabulary
building), wall time of the whole process (imports, reading, vocabulary, training, writing
vectors.txt), peak RSS, and the quality of the written vectors: Google analogies
(`questions-words.txt`, restrict_vocab 30,000) and WordSim-353 Spearman, computed by gensim's
KeyedVectors functions and by jaxembed.evaluate on the same file (they agree: see
evaluate_vs_gensim.py). Target (2-core CPU): jaxembed's words/s >= gensim's, quality within 1 point
(analogy accuracy within 1 percentage point, Spearman within 0.01).

Defaults: dim 200, window 5, negative 5, sample 1e-4, min-count 5, 5 epochs, 2 threads, seed 1.
--quick: the first 1M words of the corpus, 1 epoch. The full run takes 10+ minutes of a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from _bench import (
    add_common_args,
    machine_info,
    machine_line,
    markdown_table,
    require_file,
    run_measured,
    shared_data,
    verdict,
    write_json,
)

DEFAULT_CORPUS = shared_data("corpus-en-11m.txt.xz")
TOOLS = ("gensim", "jaxembed", "fasttext", "word2vec.c")
LEARNING_RATES = {  # each tool's default, which each runs with
    "gensim": {"skipgram": 0.025, "cbow": 0.025},
    "jaxembed": {"skipgram": 0.025, "cbow": 0.05},
    "fasttext": {"skipgram": 0.05, "cbow": 0.05},
    "word2vec.c": {"skipgram": 0.025, "cbow": 0.05},
}


# ----------------------------------------------------------------------------- workers


def gensim_worker(args: argparse.Namespace) -> None:
    """Trains gensim Word2Vec on args.corpus; writes vectors.txt and run.json to args.out."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    # --objective takes several values (nargs="+"); a worker is given exactly one.
    (objective,) = args.objective
    if objective not in ("skipgram", "cbow"):
        raise ValueError(f"gensim trains skipgram or cbow; got {objective!r}")
    started = time.perf_counter()
    model = Word2Vec(
        vector_size=args.dim,
        window=args.window,
        negative=args.negative,
        sample=args.sample,
        min_count=args.min_count,
        epochs=args.epochs,
        workers=args.threads,
        sg=1 if objective == "skipgram" else 0,
        seed=args.seed,
    )
    if args.gensim_input == "corpus_file":
        model.build_vocab(corpus_file=args.corpus)
        vocab_done = time.perf_counter()
        effective, raw = model.train(
            corpus_file=args.corpus,
            total_words=model.corpus_total_words,
            epochs=model.epochs,
        )
    else:
        sentences = LineSentence(args.corpus)
        model.build_vocab(corpus_iterable=sentences)
        vocab_done = time.perf_counter()
        effective, raw = model.train(
            corpus_iterable=sentences, total_examples=model.corpus_count, epochs=model.epochs
        )
    trained = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    model.wv.save_word2vec_format(os.path.join(args.out, "vectors.txt"))
    summary = {
        "words": raw,
        "effective_words": effective,
        "train_seconds": trained - vocab_done,
        "vocab_seconds": vocab_done - started,
        "words_per_second": raw / (trained - vocab_done),
        "vocab_size": len(model.wv),
        "sg": model.sg,  # 1 = skip-gram, 0 = CBOW: what gensim actually trained
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(summary, f, indent=1)


def fasttext_worker(args: argparse.Namespace) -> None:
    """Trains fastText without subwords (plain word2vec); writes vectors.txt and run.json."""
    import fasttext

    (objective,) = args.objective
    started = time.perf_counter()
    model = fasttext.train_unsupervised(
        args.corpus,
        model=objective,
        dim=args.dim,
        ws=args.window,
        neg=args.negative,
        t=args.sample,
        minCount=args.min_count,
        epoch=args.epochs,
        thread=args.threads,
        minn=0,
        maxn=0,
        wordNgrams=1,
        verbose=0,  # (fastText's Python API takes no seed)
    )
    trained = time.perf_counter()
    words = model.get_words()
    table = np.stack([model.get_word_vector(w) for w in words])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "vectors.txt"), "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {args.dim}\n")
        for word, row in zip(words, table, strict=True):
            f.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
    raw = args.corpus_words * args.epochs
    summary = {
        "words": raw,
        "train_seconds": trained - started,  # reading the vocabulary included
        "words_per_second": raw / (trained - started),
        "vocab_size": len(words),
        "lr": model.lr,
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(summary, f, indent=1)


def word2vec_c_command(args, corpus: str, out: str, objective: str) -> list[str]:
    cmd = [args.word2vec_c, "-train", corpus, "-output", os.path.join(out, "vectors.txt")]
    cmd += ["-size", str(args.dim), "-window", str(args.window), "-negative", str(args.negative)]
    cmd += ["-hs", "0", "-sample", str(args.sample), "-min-count", str(args.min_count)]
    cmd += ["-iter", str(args.epochs), "-threads", str(args.threads), "-binary", "0"]
    return cmd + ["-cbow", "1" if objective == "cbow" else "0"]


def word2vec_c_summary(args, out: str, measured: dict, words: int) -> dict:
    """run.json for a word2vec.c run, from its output and the process's wall time."""
    reports = re.findall(r"Words/thread/sec:\s*([0-9.]+)k", measured["stdout"])
    raw = words * args.epochs
    with open(os.path.join(out, "vectors.txt"), encoding="utf-8", errors="replace") as f:
        vocab_size = int(f.readline().split()[0])
    return {
        "words": raw,
        "train_seconds": measured["wall_s"],  # vocabulary and writing included
        "words_per_second": raw / measured["wall_s"],
        "own_words_per_second": float(reports[-1]) * 1000 * args.threads if reports else None,
        "vocab_size": vocab_size,
    }


def fasttext_command(args, corpus: str, out: str, objective: str, words: int) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker-fasttext", "--corpus", corpus]
    cmd += ["--out", out, "--objective", objective, "--epochs", str(args.epochs)]
    cmd += ["--threads", str(args.threads), "--corpus-words", str(words)]
    for name in ("dim", "window", "negative", "sample", "min_count", "seed"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return cmd


def gensim_command(args, corpus: str, out: str, objective: str) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker-gensim", "--corpus", corpus]
    cmd += ["--out", out, "--objective", objective, "--epochs", str(args.epochs)]
    cmd += ["--threads", str(args.threads), "--gensim-input", args.gensim_input]
    for name in ("dim", "window", "negative", "sample", "min_count", "seed"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return cmd


def jaxembed_command(args, corpus: str, out: str, objective: str) -> list[str]:
    cmd = [sys.executable, "-m", "jaxembed.cli", "train", corpus, "--out", out]
    cmd += ["--objective", objective, "--epochs", str(args.epochs), "--no-progress"]
    for name in ("dim", "window", "negative", "sample", "min_count", "seed"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return cmd + shlex.split(args.jaxembed_args)


# ----------------------------------------------------------------------------- corpus


def prepare_corpus(path: str, work: str, max_words: int | None) -> tuple[str, int]:
    """A plain-text copy of `path` (its first `max_words` words, whole lines); returns (path, words)."""
    target = os.path.join(work, "corpus.txt")
    opener = lzma.open if path.endswith(".xz") else open
    words = 0
    with opener(path, "rt", encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(line)
            words += len(line.split())
            if max_words is not None and words >= max_words:
                break
    return target, words


# ----------------------------------------------------------------------------- evaluation


def evaluate_run(out: str, evaluators: list[str]) -> dict:
    """Scores out/vectors.txt in a child process (this one never imports JAX, so forking is safe)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker-evaluate", out]
    done = subprocess.run([*cmd, "--evaluators", *evaluators], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"evaluating {out} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def evaluate_worker(out: str, evaluators: list[str]) -> dict:
    """Analogy accuracy (restrict 30,000) and WordSim-353 Spearman of out/vectors.txt."""
    path = os.path.join(out, "vectors.txt")
    scores = {}
    if "gensim" in evaluators:
        from gensim.models import KeyedVectors
        from gensim.test.utils import datapath

        kv = KeyedVectors.load_word2vec_format(path)
        start = time.perf_counter()
        accuracy, _ = kv.evaluate_word_analogies(
            datapath("questions-words.txt"), restrict_vocab=30_000
        )
        _, spearman, _ = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
        scores["gensim"] = {
            "analogy_accuracy": float(accuracy),
            "wordsim353_spearman": float(spearman[0]),
            "seconds": time.perf_counter() - start,
        }
    if "jaxembed" in evaluators:
        from jaxembed.evaluate import evaluate_suite
        from jaxembed.io import load_vectors

        table_VxD, vocab = load_vectors(path)
        start = time.perf_counter()
        suite = evaluate_suite(table_VxD, vocab, 30_000, ("questions-words", "wordsim353"))
        analogies, pairs = suite["questions-words"], suite["wordsim353"]
        scores["jaxembed"] = {
            "analogy_accuracy": analogies["accuracy"],
            "analogy_attempted": analogies["attempted"],
            "wordsim353_spearman": pairs["spearman"],
            "seconds": time.perf_counter() - start,
        }
    if len(scores) == 2:
        a, b = scores["gensim"], scores["jaxembed"]
        scores["evaluators_agree"] = (
            abs(a["analogy_accuracy"] - b["analogy_accuracy"]) < 1e-12
            and abs(a["wordsim353_spearman"] - b["wordsim353_spearman"]) < 1e-9
        )
    return scores


# ----------------------------------------------------------------------------- driver


def run_one(args, tool, objective, corpus, work, index, words) -> dict:
    out = os.path.join(work, f"{index:02d}-{tool}-{objective}")
    if tool == "fasttext":
        cmd = fasttext_command(args, corpus, out, objective, words)
    elif tool == "word2vec.c":
        os.makedirs(out, exist_ok=True)
        cmd = word2vec_c_command(args, corpus, out, objective)
    else:
        make = gensim_command if tool == "gensim" else jaxembed_command
        cmd = make(args, corpus, out, objective)
    print(f"[{time.strftime('%H:%M:%S')}] {tool} {objective}: {shlex.join(cmd)}", flush=True)
    measured = run_measured(cmd, cpus=args.threads, timeout_s=args.timeout)
    row = {"tool": tool, "objective": objective, "command": shlex.join(cmd)}
    row |= {k: measured[k] for k in ("returncode", "wall_s", "peak_rss_mib", "user_s", "system_s")}
    row["cpu_utilisation"] = (measured["user_s"] + measured["system_s"]) / measured["wall_s"]
    row["lr"] = LEARNING_RATES[tool][objective]
    row["load_average"] = os.getloadavg()[0]
    run_json = os.path.join(out, "run.json")
    if tool == "word2vec.c" and measured["returncode"] == 0:
        with open(run_json, "w") as f:
            json.dump(word2vec_c_summary(args, out, measured, words), f)
    if measured["returncode"] != 0 or not os.path.exists(run_json):
        row["error"] = measured["stderr"][-3000:]
        print(f"  FAILED (exit {measured['returncode']}):\n{row['error']}", flush=True)
        return row
    with open(run_json) as f:
        summary = json.load(f)
    row["words"] = summary["words"]
    row["train_s"] = summary["train_seconds"]
    row["words_per_s"] = summary["words"] / summary["train_seconds"]
    row["vocab_size"] = summary["vocab_size"]
    row["loss"] = summary.get("loss")
    row["backend"] = summary.get("backend", "cpu")  # jaxembed's run.json names its device
    # jaxembed's clock includes compiling the step, on a GPU most of a short run's seconds
    row["first_call_s"] = summary.get("first_call_seconds")
    row["words_per_s_after_first_call"] = summary.get("words_per_second_after_first_call")
    try:
        row["scores"] = evaluate_run(out, args.evaluators)
    except RuntimeError as err:
        row["error"] = str(err)[-3000:]
        print(f"  EVALUATION FAILED:\n{row['error']}", flush=True)
        return row
    if row["scores"].get("evaluators_agree") is False:
        print("  note: gensim's and jaxembed's evaluators differ on these vectors", flush=True)
    main_scores = row["scores"][args.evaluators[0]]
    row["analogy_accuracy"] = main_scores["analogy_accuracy"]
    row["wordsim353_spearman"] = main_scores["wordsim353_spearman"]
    after = row["words_per_s_after_first_call"]
    print(
        f"  {row['words_per_s']:,.0f} words/s"
        + (f" ({after:,.0f} after a first call of {row['first_call_s']:.1f} s)" if after else "")
        + f", train {row['train_s']:.1f} s, wall "
        f"{row['wall_s']:.1f} s, peak {row['peak_rss_mib']:,.0f} MiB, analogies "
        f"{100 * row['analogy_accuracy']:.2f}%, WordSim-353 {row['wordsim353_spearman']:.3f}",
        flush=True,
    )
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return row


def compare(rows: list[dict], objective: str, peer: str = "gensim") -> dict | None:
    """Medians of jaxembed and one peer for one objective, their ratios and the target verdict."""
    tools = ("jaxembed", peer)
    done = {t: [r for r in rows if r["tool"] == t and r["objective"] == objective] for t in tools}
    done = {t: [r for r in rs if "error" not in r] for t, rs in done.items()}
    if not all(done.values()):
        return None
    med = {t: {k: float(np.median([r[k] for r in rs])) for k in _METRICS} for t, rs in done.items()}
    speed = med["jaxembed"]["words_per_s"] / med[peer]["words_per_s"]
    analogy_gap = 100 * (med["jaxembed"]["analogy_accuracy"] - med[peer]["analogy_accuracy"])
    wordsim_gap = med["jaxembed"]["wordsim353_spearman"] - med[peer]["wordsim353_spearman"]
    return {
        "objective": objective,
        "peer": peer,
        "medians": med,
        "words_per_s_ratio": speed,
        "wall_ratio": med["jaxembed"]["wall_s"] / med[peer]["wall_s"],
        "peak_rss_ratio": med["jaxembed"]["peak_rss_mib"] / med[peer]["peak_rss_mib"],
        "analogy_gap_points": analogy_gap,
        "wordsim_gap": wordsim_gap,
        "met": speed >= 1.0 and analogy_gap >= -1.0 and wordsim_gap >= -0.01,
    }


_METRICS = ("words_per_s", "train_s", "wall_s", "peak_rss_mib", "analogy_accuracy")
_METRICS += ("wordsim353_spearman", "cpu_utilisation")


def report(rows: list[dict], comparisons: list[dict], evaluator: str) -> None:
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["objective"], r["tool"], "failed", *[""] * 9])
            continue
        after = r.get("words_per_s_after_first_call")
        body.append(
            [
                r["objective"],
                r["tool"],
                f"{r['words_per_s']:,.0f}",
                f"{after:,.0f} ({r['first_call_s']:.1f} s)" if after else "",
                f"{r['train_s']:.1f}",
                f"{r['wall_s']:.1f}",
                f"{r['peak_rss_mib']:,.0f}",
                f"{100 * r['cpu_utilisation']:.0f}%",
                f"{r['lr']:g}",
                f"{100 * r['analogy_accuracy']:.2f}%",
                f"{r['wordsim353_spearman']:.3f}",
                f"{r['load_average']:.2f}",
            ]
        )
    headers = ["objective", "tool", "words/s (training)", "after the first call (its s)"]
    headers += ["training s", "wall s", "peak RSS MiB"]
    headers += ["CPU used", "lr", "analogies (30k)", "WordSim-353 Spearman", "load (1 min)"]
    print(f"\n## Runs (quality by {evaluator}'s evaluator)\n")
    print(markdown_table(headers, body))
    body = [
        [
            c["objective"],
            c["peer"],
            f"{c['words_per_s_ratio']:.2f}x",
            f"{c['wall_ratio']:.2f}x",
            f"{c['peak_rss_ratio']:.2f}x",
            f"{c['analogy_gap_points']:+.2f}",
            f"{c['wordsim_gap']:+.3f}",
            verdict(c["met"]),
        ]
        for c in comparisons
    ]
    headers = ["objective", "peer", "words/s jaxembed / peer", "wall jaxembed / peer"]
    headers += ["peak RSS jaxembed / peer", "analogy gap (points)", "Spearman gap"]
    print("\n## jaxembed vs each peer (target: words/s >= 1x, quality within 1 point)\n")
    print(markdown_table([*headers, "target"], body))


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """The settings every tool trains with, and the corpus prefix (shared with batch_quality.py)."""
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-4)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--epochs", type=int, help="default 5 (--quick: 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="cores each run is pinned to")
    parser.add_argument("--max-words", type=int, help="corpus prefix (--quick: 1,000,000)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--objective", nargs="+", default=["skipgram", "cbow"])
    add_training_args(parser)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool per objective")
    parser.add_argument(
        "--gensim-input",
        choices=("linesentence", "corpus_file"),
        default="linesentence",
        help="gensim's input path: LineSentence iterable or its corpus_file mode",
    )
    parser.add_argument("--jaxembed-args", default="", help="extra `jaxembed train` flags")
    parser.add_argument(
        "--peers",
        nargs="+",
        choices=TOOLS[:1] + TOOLS[2:],
        help="tools run beside jaxembed (default: gensim, fasttext if installed, word2vec.c if "
        "--word2vec-c is given)",
    )
    parser.add_argument("--word2vec-c", help="a word2vec binary built as the docstring says")
    parser.add_argument(
        "--evaluators",
        nargs="+",
        choices=("gensim", "jaxembed"),
        help="who scores the vectors (first is reported); default both (--quick: jaxembed)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--work-dir", help="keep corpus copy and runs here (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep each run's output directory")
    parser.add_argument("--worker-gensim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-fasttext", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus-words", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--worker-evaluate", metavar="DIR", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    from gensim.test.utils import datapath

    if args.worker_evaluate:  # scores a run's vectors: needs no corpus
        print(json.dumps(evaluate_worker(args.worker_evaluate, args.evaluators)))
        return
    require_file(args.corpus, "--corpus", datapath("lee_background.cor"))
    if args.epochs is None:
        args.epochs = 1 if args.quick else 5
    if args.worker_gensim:
        gensim_worker(args)
        return
    if args.worker_fasttext:
        fasttext_worker(args)
        return
    if args.peers is None:
        args.peers = ["gensim"]
        if importlib.util.find_spec("fasttext") is not None:
            args.peers.append("fasttext")
        if args.word2vec_c:
            args.peers.append("word2vec.c")
    if "word2vec.c" in args.peers and not args.word2vec_c:
        parser.error("--peers word2vec.c needs --word2vec-c PATH (a binary built as --help says)")
    if "word2vec.c" in args.peers:
        require_file(args.word2vec_c, "--word2vec-c", "./word2vec")
    if args.max_words is None and args.quick:
        args.max_words = 1_000_000
    if args.evaluators is None:
        args.evaluators = ["jaxembed"] if args.quick else ["gensim", "jaxembed"]
    info = machine_info()
    print(f"machine: {machine_line(info)}", flush=True)
    work = args.work_dir or tempfile.mkdtemp(prefix="train-vs-gensim-")
    os.makedirs(work, exist_ok=True)
    try:
        corpus, words = prepare_corpus(args.corpus, work, args.max_words)
        print(f"corpus: {args.corpus} -> {corpus}, {words:,} words, {args.epochs} epoch(s)")
        rows, index = [], 0
        tools = ["jaxembed", *args.peers]
        for objective in args.objective:
            for _ in range(args.repeats):
                order = tools if index % 2 == 0 else tools[::-1]
                for tool in order:
                    rows.append(run_one(args, tool, objective, corpus, work, len(rows), words))
                index += 1
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    comparisons = [
        c for o in args.objective for p in args.peers if (c := compare(rows, o, p)) is not None
    ]
    report(rows, comparisons, args.evaluators[0])
    settings = {k: v for k, v in vars(args).items() if not k.startswith("worker") and k != "out"}
    write_json(
        args.json_out,
        {
            "machine": info,
            "settings": settings,
            "corpus_words": words,
            "runs": rows,
            "comparisons": comparisons,
        },
    )


if __name__ == "__main__":
    main()
