"""`jaxembed demo`: the lecture's whole pipeline, end to end, on data shipped with the dependencies.

text -> word tokens -> token IDs -> a random table -> word2vec training -> neighbours and an
analogy; then GloVe's king + woman - man when the glove extra is installed. The text is gensim's
Lee news corpus (60,000 words, in every gensim install) unless --corpus names other files.
DIR/report.md tells the story with the numbers of this run and the figures beside it.

    jaxembed demo --out demo-out          # about a minute on 2 CPU cores
    jaxembed demo --out demo-out --quick  # seconds: a smoke test with fewer epochs

The stages are public functions, which experiments/05_weight_matrix.py and the notebooks reuse.
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import gzip
import lzma
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

# Related words of the Lee corpus (2001 news), chosen before training; report every one.
LEE_PAIRS = (
    ("al", "qaeda"),
    ("osama", "laden"),
    ("tora", "bora"),
    ("yasser", "arafat"),
    ("afghanistan", "taliban"),
    ("israel", "palestinian"),
    ("hamas", "gaza"),
    ("fire", "firefighters"),
    ("prime", "minister"),
    ("south", "wales"),
    ("sydney", "melbourne"),
    ("qantas", "unions"),
)
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


def default_corpus() -> str:
    """gensim's Lee background corpus: 300 news stories, one per line, 60k words."""
    from gensim.test.utils import datapath

    return datapath("lee_background.cor")


def open_text(path: str | os.PathLike):
    """Opens a plain, .xz, .gz or .bz2 text file for reading (UTF-8, bad bytes replaced)."""
    opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(Path(path).suffix, open)
    return opener(path, "rt", encoding="utf-8", errors="replace")


def word_lines(
    paths: Sequence[str | os.PathLike], max_lines: int | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Yields (line, its lowercase word tokens without punctuation) for each non-empty line."""
    from jaxembed.tokenize import split_words

    done = 0
    for path in paths:
        with open_text(path) as f:
            for line in f:
                if max_lines is not None and done >= max_lines:
                    return
                words = [t.lower() for t in split_words(line) if t[0].isalnum()]
                if words:
                    done += 1
                    yield line.strip(), words


def prepare_corpus(
    paths: Sequence[str | os.PathLike], dst: str | os.PathLike, max_lines: int | None = None
) -> dict:
    """Tokenizes text files into `dst`: one line of space-separated lowercase words per line.

    Args:
      paths: text files, one sentence or document per line.
      dst: the file to write (atomically).
      max_lines: stop after this many non-empty lines.

    Returns:
      {"lines", "tokens", "example_text", "example_tokens"} (the example is the first line).

    Example:
      >>> prepare_corpus([default_corpus()], "corpus.txt")["tokens"]
      58548
    """
    from jaxembed.plots import atomic_open

    stats = {"lines": 0, "tokens": 0, "example_text": "", "example_tokens": []}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(dst, "w") as f:
        for line, words in word_lines(paths, max_lines):
            if not stats["lines"]:
                stats["example_text"], stats["example_tokens"] = line, words
            stats["lines"] += 1
            stats["tokens"] += len(words)
            f.write(" ".join(words) + "\n")
    if not stats["lines"]:
        raise ValueError(f"no words found in {[os.fspath(p) for p in paths]} - pass text files")
    return stats


def train_before_after(corpus_path, run_dir, train_config, fit_config, progress: bool = True):
    """Trains word2vec with `jaxembed.loop.fit`; returns the table before and after training.

    Args:
      corpus_path: a tokenized text file (see `prepare_corpus`).
      run_dir: the run's folder (replaced if it holds an earlier run).
      train_config, fit_config: `jaxembed.train.TrainConfig` and `jaxembed.loop.FitConfig`.
      progress: show fit's progress bar (words/s, loss).

    Returns:
      (before_VxD, after_VxD, vocab, summary): the random initial table `fit` started from
      (`init_state` with the same seed), the learned one, its vocabulary and fit's summary.

    Example:
      >>> before_VxD, after_VxD, vocab, summary = train_before_after("corpus.txt", "w2v",
      ...     TrainConfig(dim=50), FitConfig(epochs=20, min_count=3))
    """
    import numpy as np

    from jaxembed import loop, train
    from jaxembed.io import load_vectors

    summary = loop.fit(
        [corpus_path], run_dir, train_config, fit_config, overwrite=True, progress=progress
    )
    after_VxD, vocab = load_vectors(run_dir)
    before_VxD = np.asarray(train.input_table(train.init_state(train_config, len(vocab))))
    return before_VxD, after_VxD, vocab, summary


def learn_and_compare(
    corpus_path, out, train_config, fit_config, pairs: Sequence[tuple[str, str]] = LEE_PAIRS
) -> dict:
    """Trains a table (`train_before_after`) and shows how related words moved; draws the figures.

    Prints the vocabulary, the speed, and for each pair found in the vocabulary its cosine and
    rank before -> after training; writes `before_after_figures` into `out`.

    Args:
      corpus_path: a tokenized text file (see `prepare_corpus`).
      out: the folder of the figures; the run goes to out/word2vec.
      train_config, fit_config: `jaxembed.train.TrainConfig` and `jaxembed.loop.FitConfig`.
      pairs: related (a, b) words; pairs with a word outside the vocabulary are left out.

    Returns:
      {"before_VxD", "after_VxD", "vocab", "summary", "pairs_before", "pairs_after", "figures"}.

    Example:
      >>> learned = learn_and_compare("corpus.txt", "out", TrainConfig(dim=50), FitConfig())
      >>> learned["pairs_after"][0]["rank"]
      1
    """
    out = Path(out)
    before_VxD, after_VxD, vocab, summary = train_before_after(
        corpus_path, out / "word2vec", train_config, fit_config
    )
    print(
        f"  vocabulary {len(vocab):,} words; table {after_VxD.shape}; "
        f"{summary['words_per_second']:,.0f} words/s; loss {summary['epoch_losses'][0]:.3f} -> "
        f"{summary['epoch_losses'][-1]:.3f}"
    )
    pairs = [p for p in pairs if p[0] in vocab and p[1] in vocab]
    before = pair_closeness(before_VxD, vocab, pairs)
    after = pair_closeness(after_VxD, vocab, pairs)
    print(f"  related words, before -> after training (rank 1 = nearest of {len(vocab) - 1:,}):")
    for b, a in zip(before, after, strict=True):
        print(
            f"  {b['a']:>12} ~ {b['b']:<12} cosine {b['cosine']:+.2f} -> {a['cosine']:+.2f}"
            f"   rank {b['rank']:>5} -> {a['rank']:>4}"
        )
    figures = before_after_figures(
        out, before_VxD, after_VxD, vocab, pairs, summary["epoch_losses"]
    )
    return {
        "before_VxD": before_VxD,
        "after_VxD": after_VxD,
        "vocab": vocab,
        "summary": summary,
        "pairs_before": before,
        "pairs_after": after,
        "figures": figures,
    }


def pair_closeness(table_VxD, vocab, pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """How close b is to a, for each (a, b): their cosine and b's rank among a's neighbours.

    The rank (1 = a's nearest word) is the fair measure across tables: word2vec vectors share a
    common direction, so the cosine of any two words rises in training, related or not.

    Returns:
      [{"a", "b", "cosine", "rank", "of"}, ...], "of" being the number of candidate words.

    Example:
      >>> pair_closeness(after_VxD, vocab, [("al", "qaeda")])
      [{'a': 'al', 'b': 'qaeda', 'cosine': 0.98..., 'rank': 1, 'of': 2862}]
    """
    import numpy as np

    from jaxembed.vectors import similarity_matrix

    if not pairs:
        return []
    a_P = vocab.encode([a for a, _ in pairs])
    b_P = vocab.encode([b for _, b in pairs])
    scores_PxV = np.array(similarity_matrix(table_VxD[a_P], table_VxD))
    scores_PxV[np.arange(len(pairs)), a_P] = -np.inf  # a is not its own neighbour
    target_P = scores_PxV[np.arange(len(pairs)), b_P]
    ranks_P = 1 + (scores_PxV > target_P[:, None]).sum(axis=1)
    return [
        {"a": a, "b": b, "cosine": float(c), "rank": int(r), "of": len(vocab) - 1}
        for (a, b), c, r in zip(pairs, target_P, ranks_P, strict=True)
    ]


def before_after_figures(out, before_VxD, after_VxD, vocab, pairs, epoch_losses) -> list[Path]:
    """Writes projection_before_after.png, similarity_before_after.png and loss.png to `out`."""
    import numpy as np

    from jaxembed.plots import figure, heatmap, line_plot, pair_projection, save_figure
    from jaxembed.vectors import similarity_matrix

    out, paths = Path(out), []
    if pairs:
        fig, axes = figure(ncols=2, panel_inches=(6.0, 5.2))
        pair_projection(axes[0], before_VxD, vocab, pairs, title="random table (before training)")
        pair_projection(axes[1], after_VxD, vocab, pairs, title="trained word2vec (after)")
        paths.append(save_figure(fig, out / "projection_before_after.png"))
        words = list(dict.fromkeys(w for pair in pairs for w in pair))
        fig, axes = figure(ncols=2, panel_inches=(6.0, 5.2))
        for ax, table_VxD, title in (
            (axes[0], before_VxD, "before"),
            (axes[1], after_VxD, "after"),
        ):
            vectors_NxD = table_VxD[vocab.encode(words)]
            heatmap(
                ax,
                similarity_matrix(vectors_NxD, vectors_NxD),
                words,
                annotate=False,
                title=f"cosine similarity, {title} training",
            )
        paths.append(save_figure(fig, out / "similarity_before_after.png"))
    fig, ax = figure()
    epochs = np.arange(1, len(epoch_losses) + 1)
    line_plot(
        ax,
        epochs,
        {"skip-gram loss": epoch_losses},
        "epoch",
        "mean loss per pair",
        title="word2vec training",
    )
    paths.append(save_figure(fig, out / "loss.png"))
    return paths


def analogy_accuracy(table_VxD, vocab) -> dict:
    """Google's analogy questions (gensim's questions-words.txt) whose words are all in `vocab`."""
    from jaxembed.evaluate import benchmark_path, evaluate_analogies

    result = evaluate_analogies(table_VxD, vocab, benchmark_path("questions-words"), None)
    return {k: result[k] for k in ("accuracy", "correct", "attempted", "questions")}


def glove_queries() -> dict:
    """king + woman - man and tower's neighbours on GloVe 6B 50-d, or why they were skipped."""
    from jaxembed.io import load_vectors
    from jaxembed.vectors import most_similar

    try:
        table_VxD, vocab = load_vectors("glove-6b-50d", limit=100_000)
    except ImportError as err:
        return {"skipped": str(err)}
    return {
        "analogy": most_similar(
            table_VxD, vocab, positive=["king", "woman"], negative=["man"], topn=5
        ),
        "tower": most_similar(table_VxD, vocab, positive=["tower"], topn=5),
    }


def write_report(out, config: DemoConfig, results: dict) -> Path:
    """Writes out/report.md from `run`'s results (atomically)."""
    from jaxembed.plots import atomic_open

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
        f"> {results['tokens']['example_text'][:200]}",
        "",
        f"Word tokens: `{' '.join(results['tokens']['example_tokens'][:12])} ...`",
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


def _stage(number: int, title: str, detail=None) -> None:
    suffix = f" ({', '.join(Path(p).name for p in detail)})" if detail else ""
    print(f"[{number}/5] {title}{suffix}", flush=True)
