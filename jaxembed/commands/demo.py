"""`jaxembed demo`: the lecture's whole pipeline, end to end, on data shipped with the dependencies.

text -> word tokens -> token IDs -> a random table -> word2vec training -> neighbours and an
analogy; then GloVe's king + woman - man when the glove extra is installed. The text is gensim's
Lee news corpus (60,000 words, in every gensim install) unless --corpus names other files.
DIR/report.md tells the story with the numbers of this run and the figures beside it.

    jaxembed demo --out demo-out          # about a minute on 2 CPU cores
    jaxembed demo --out demo-out --quick  # seconds: a smoke test with fewer epochs

The stages are functions of `jaxembed.lecture`, shared with the experiments and notebooks.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from jaxembed.lecture import LEE_PAIRS

LEE_QUERIES = ("fire", "afghanistan", "police", "government")  # words whose neighbours we show


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    out: str = "demo-out"  # folder of report.md, the figures and the trained run
    corpus: tuple[str, ...] = ()  # text files (.xz/.gz/.bz2 too); empty: gensim's Lee corpus
    max_lines: int | None = None  # read only the first lines of the corpus
    dim: int = 50  # D, the vector size
    epochs: int = 20  # passes over the corpus (a small corpus needs many)
    window: int = 5  # word2vec context window
    min_count: int = 3  # drop rarer words
    batch_size: int = 256  # skip-gram pairs per step
    seed: int = 1  # initial table and sampling
    glove: bool = True  # also query GloVe 6B 50-d when the glove extra is installed
    pairs: tuple[tuple[str, str], ...] = LEE_PAIRS  # related words to compare before/after
    queries: tuple[str, ...] = LEE_QUERIES  # words whose nearest neighbours are shown


def register(subparsers) -> None:
    """Adds the `demo` subcommand."""
    defaults = DemoConfig()
    p = subparsers.add_parser(
        "demo",
        help="the lecture end to end: text -> IDs -> vectors -> trained vectors -> report",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--out", default=defaults.out, help=f"output folder (default {defaults.out})")
    p.add_argument(
        "--corpus",
        nargs="+",
        default=[],
        metavar="FILE",
        help="text files to train on instead of gensim's Lee corpus",
    )
    p.add_argument("--max-lines", type=int, default=None, help="read only the first lines")
    p.add_argument("--dim", type=int, default=defaults.dim, help="vector size")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the corpus")
    p.add_argument("--min-count", type=int, default=defaults.min_count)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--no-glove", action="store_true", help="skip the GloVe part")
    p.add_argument("--quick", action="store_true", help="a smoke test: 5 epochs of 16-d vectors")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """The `demo` command: flags -> DemoConfig -> `run`."""
    quick = {"epochs": 5, "dim": 16} if args.quick else {}
    config = DemoConfig(
        out=args.out,
        corpus=tuple(args.corpus),
        max_lines=args.max_lines,
        dim=quick.get("dim", args.dim),
        epochs=quick.get("epochs", args.epochs),
        min_count=args.min_count,
        seed=args.seed,
        glove=not args.no_glove,
    )
    run(config)
    return 0


def run(config: DemoConfig) -> dict:
    """Runs every stage, printing progress, and writes report.md; returns the numbers."""
    from jaxembed import loop, train
    from jaxembed.lecture import (
        analogy_accuracy,
        default_corpus,
        glove_queries,
        learn_and_compare,
        prepare_corpus,
    )
    from jaxembed.plots import write_json
    from jaxembed.vectors import most_similar

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = list(config.corpus) or [default_corpus()]

    _stage(1, "text -> word tokens", paths)
    corpus_path = out / "corpus.txt"
    tokens = prepare_corpus(paths, corpus_path, config.max_lines)
    print(f"  {tokens['lines']:,} lines, {tokens['tokens']:,} tokens -> {corpus_path}")
    print(f"  {tokens['example_text'][:70]!r}...\n  -> {tokens['example_tokens'][:10]}...")

    _stage(2, "tokens -> IDs -> random table -> trained table (word2vec skip-gram)")
    train_config = train.TrainConfig(objective="skipgram", dim=config.dim, seed=config.seed)
    fit_config = loop.FitConfig(
        epochs=config.epochs,
        window=config.window,
        min_count=config.min_count,
        batch_size=config.batch_size,
    )
    learned = learn_and_compare(corpus_path, out, train_config, fit_config, config.pairs)
    before_VxD, after_VxD, vocab = learned["before_VxD"], learned["after_VxD"], learned["vocab"]
    summary, figures = learned["summary"], learned["figures"]
    example_ids = [vocab.key_to_index.get(t) for t in tokens["example_tokens"][:10]]
    print(f"  IDs of the first tokens: {example_ids} (None: rarer than min count)")

    _stage(3, "nearest neighbours and an analogy on the trained vectors")
    queries = [q for q in config.queries if q in vocab]
    neighbours = {q: most_similar(after_VxD, vocab, positive=[q], topn=6) for q in queries}
    random_neighbours = {q: most_similar(before_VxD, vocab, positive=[q], topn=6) for q in queries}
    for q in queries:
        print(f"  {q}: " + ", ".join(w for w, _ in neighbours[q]))
    analogies = analogy_accuracy(after_VxD, vocab)
    print(
        f"  Google analogies answerable with this vocabulary: {analogies['attempted']}, "
        f"correct {analogies['correct']} ({100 * analogies['accuracy']:.1f}%)"
    )

    glove = glove_queries() if config.glove else {"skipped": "--no-glove"}
    _stage(4, "pretrained GloVe 6B 50-d: king + woman - man")
    if "analogy" in glove:
        print("  " + ", ".join(f"{w} ({s:.3f})" for w, s in glove["analogy"]))
    else:
        print(f"  skipped: {glove['skipped']}")

    results = {
        "corpus": [os.fspath(p) for p in paths],
        "tokens": tokens,
        "example_ids": example_ids,
        "vocab_size": len(vocab),
        "table_shape": list(after_VxD.shape),
        "training": {k: summary[k] for k in ("epoch_losses", "train_seconds", "words_per_second")},
        "pairs_before": learned["pairs_before"],
        "pairs_after": learned["pairs_after"],
        "neighbours": neighbours,
        "random_neighbours": random_neighbours,
        "analogies": analogies,
        "glove": glove,
        "figures": [f.name for f in figures],
        "seconds": time.perf_counter() - started,
    }
    _stage(5, "report")
    write_json(out / "results.json", results)
    write_report(out, config, results)
    print(f"  wrote {out / 'report.md'} and {len(figures)} figures in {results['seconds']:.0f} s")
    return results


def write_report(out, config: DemoConfig, results: dict) -> Path:
    """Writes out/report.md from `run`'s results (atomically)."""
    from jaxembed.files import atomic_open

    def words(pairs) -> str:
        return ", ".join(f"{w} ({s:.2f})" for w, s in pairs)

    lines = [
        "# jaxembed demo: token embeddings end to end",
        "",
        f"Corpus: {', '.join(Path(p).name for p in results['corpus'])} - "
        f"{results['tokens']['lines']:,} lines, {results['tokens']['tokens']:,} word tokens. "
        f"Run time {results['seconds']:.0f} s.",
        "",
        "## 1. text -> tokens -> IDs -> vectors",
        "",
        f"> {_shorten(results['tokens']['example_text'], 200)}",
        "",
        f"Word tokens: `{' '.join(results['tokens']['example_tokens'][:10])} ...`",
        "",
        f"Token IDs: `{' '.join(str(i) for i in results['example_ids'])} ...` (None: a word seen "
        f"fewer than {config.min_count} times, left out of the vocabulary)",
        "",
        f"Vocabulary: {results['vocab_size']:,} words seen at least {config.min_count} times, "
        f"frequency order. The embedding table is {results['table_shape'][0]:,} x "
        f"{results['table_shape'][1]}: one row per token ID, drawn at random, then learned.",
        "",
        "## 2. Training (word2vec skip-gram, negative sampling, jaxembed.loop.fit)",
        "",
        f"{config.epochs} epochs, {results['training']['train_seconds']:.1f} s, "
        f"{results['training']['words_per_second']:,.0f} words/s. Mean loss per epoch: "
        + ", ".join(f"{x:.3f}" for x in results["training"]["epoch_losses"]),
        "",
        "![loss](loss.png)",
        "",
        "## 3. Related words are closer after training",
        "",
        "Rank = where b comes among a's nearest neighbours (1 = nearest), of "
        f"{results['vocab_size'] - 1:,} words.",
        "",
        "| a | b | cosine before | cosine after | rank before | rank after |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for b, a in zip(results["pairs_before"], results["pairs_after"], strict=True):
        lines.append(
            f"| {b['a']} | {b['b']} | {b['cosine']:+.2f} | {a['cosine']:+.2f} | "
            f"{b['rank']} | {a['rank']} |"
        )
    if "projection_before_after.png" in results["figures"]:
        lines += [
            "",
            "![before and after](projection_before_after.png)",
            "",
            "![similarity before and after](similarity_before_after.png)",
        ]
    lines += [
        "",
        "## 4. Nearest neighbours",
        "",
        "| word | random table | trained |",
        "| --- | --- | --- |",
    ]
    for q, found in results["neighbours"].items():
        lines.append(f"| {q} | {words(results['random_neighbours'][q])} | {words(found)} |")
    analogies = results["analogies"]
    lines += [
        "",
        f"Analogies: of Google's {analogies['questions']:,} analogy questions, "
        f"{analogies['attempted']} use only words of this small vocabulary; "
        f"{analogies['correct']} answered right ({100 * analogies['accuracy']:.1f}%). Analogies "
        "need corpora of many millions of words (try --corpus); pretrained vectors show them:",
        "",
        "## 5. Pretrained GloVe 6B 50-d",
        "",
    ]
    glove = results["glove"]
    if "analogy" in glove:
        lines += [
            f"king + woman - man: {words(glove['analogy'])}",
            "",
            f"tower: {words(glove['tower'])}",
        ]
    else:
        lines += [f"Skipped: {glove['skipped']}"]
    path = Path(out) / "report.md"
    with atomic_open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def _stage(number: int, title: str, detail=None) -> None:
    suffix = f" ({', '.join(Path(p).name for p in detail)})" if detail else ""
    print(f"[{number}/5] {title}{suffix}", flush=True)
