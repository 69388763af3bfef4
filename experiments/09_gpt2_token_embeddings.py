"""Beyond the lecture: word2vec learned directly on GPT-2's BPE tokens, beside a word-level run.

The lecture's table has one row per GPT-2 token (50,257). Here skip-gram learns such a table from
raw text tokenized by GPT-2's own BPE (`--tokenizer gpt2`): row i of the result is GPT-2 token i,
ready to initialise a GPT-2-sized token table. The same text is also trained word-level
(`--tokenizer words`, case kept as GPT-2 keeps it), and the nearest neighbours of a few tokens
are printed side by side: a word that is one token ("Ġking", the word after a space) against the
same word in the word table, and pieces that are no word at all ("ing").

    python experiments/09_gpt2_token_embeddings.py [--corpus FILE ...] [--epochs 20] [--out DIR]

The default text is gensim's Lee news corpus, which every install has; pass
`--corpus ../shared/data/austen-novels.txt.xz` (or your own raw text) for a larger one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from jaxembed.lecture import LEE

# Query tokens (GPT-2 keys: "Ġ" is the leading space); those the corpus did not train are skipped.
QUERIES = (
    "Ġking",
    "ĠParis",
    "ing",
    "Ġ1990",
    "ĠElizabeth",
    "ĠAustralia",
    "Ġpolice",
    "Ġsaid",
    "Ġmother",
    "ĠLondon",
)


@dataclasses.dataclass(frozen=True)
class Config:
    corpus: tuple[str, ...] = ()  # raw text files; empty: gensim's Lee corpus
    dim: int = LEE.dim  # D of both tables
    epochs: int = LEE.epochs  # passes over the corpus
    min_count: int = LEE.min_count  # tokens (words) seen fewer times are not trained
    batch_size: int = LEE.batch_size  # skip-gram pairs per step
    topn: int = 5  # neighbours shown per query
    queries: tuple[str, ...] = QUERIES
    seed: int = LEE.seed
    out: str = "runs/experiments/09_gpt2_token_embeddings"  # where results.json and figures go


def run(config: Config) -> dict:
    """Trains the two tables, compares neighbours, writes results.json and a figure."""
    import numpy as np

    from jaxembed import plots
    from jaxembed.files import write_json
    from jaxembed.loop import FitConfig, fit
    from jaxembed.tokenize import gpt2_token_bytes
    from jaxembed.train import TrainConfig
    from jaxembed.vectors import most_similar, token_for, trained_rows

    out = Path(config.out)
    paths = list(config.corpus) or ["lee"]
    train_config = TrainConfig(objective="skipgram", dim=config.dim, seed=config.seed)
    runs = {}
    for tokenizer in ("gpt2", "words"):
        fit_config = FitConfig(
            epochs=config.epochs,
            min_count=config.min_count,
            batch_size=config.batch_size,
            tokenizer=tokenizer,
        )
        result = fit(paths, out / tokenizer, train_config, fit_config, overwrite=True)
        table_VxD, vocab = trained_rows(result.table_VxD, result.vocab)
        runs[tokenizer] = (result, table_VxD, vocab)
        print(
            f"{tokenizer}: {result.summary['words']:,} tokens trained in "
            f"{result.summary['train_seconds']:.1f} s; table {result.table_VxD.shape[0]:,} x "
            f"{config.dim}, {len(vocab):,} rows trained"
        )

    comparisons = []
    _, token_table, token_vocab = runs["gpt2"]
    _, word_table, word_vocab = runs["words"]
    for key in config.queries:
        if key not in token_vocab:
            continue
        word = gpt2_token_bytes(key).decode("utf-8", "replace").strip()
        tokens = most_similar(token_table, token_vocab, positive=[key], topn=config.topn)
        words = None
        if token_for(word_vocab, word) is not None and key.startswith("Ġ"):
            words = most_similar(word_table, word_vocab, positive=[word], topn=config.topn)
        comparisons.append({"token": key, "word": word, "tokens": tokens, "words": words})
        shown = ", ".join(t for t, _ in tokens)
        beside = ", ".join(w for w, _ in words) if words else "(not a word of its own)"
        print(f"{key:>12}: {shown}\n{'word ' + word:>12}: {beside}")

    # One figure: for each query that is a word, its nearest GPT-2 tokens beside its nearest
    # words, with their cosines.
    shown = [row for row in comparisons if row["words"]][:5]
    figures = []
    if shown:
        fig, axes = plots.figure(ncols=2, nrows=len(shown), panel_inches=(4.2, 1.9))
        axes = np.asarray(axes).reshape(len(shown), 2)
        for (left, right), row in zip(axes, shown, strict=True):
            for ax, found, colour, what in (
                (left, row["tokens"], "C0", f"GPT-2 table: nearest to {row['token']}"),
                (right, row["words"], "C1", f"word table: nearest to {row['word']}"),
            ):
                labels, scores = [k for k, _ in found][::-1], [c for _, c in found][::-1]
                ax.barh(range(len(found)), scores, color=colour)
                ax.set_yticks(range(len(found)), labels)
                ax.set_xlim(0, 1)
                ax.set_title(what, fontsize=10)
        for ax in axes[-1]:
            ax.set_xlabel("cosine similarity")
        fig.suptitle(
            "Skip-gram on GPT-2 tokens (left) and on words (right), same text", fontsize=11
        )
        figures.append(plots.save_figure(fig, out / "gpt2_token_neighbours.png").name)

    results = {
        "corpus": paths,
        "gpt2_table_shape": list(runs["gpt2"][0].table_VxD.shape),
        "gpt2_trained_rows": len(token_vocab),
        "word_vocab_size": len(word_vocab),
        "gpt2_tokens": runs["gpt2"][0].summary["words"],
        "words": runs["words"][0].summary["words"],
        "gpt2_train_seconds": runs["gpt2"][0].summary["train_seconds"],
        "words_train_seconds": runs["words"][0].summary["train_seconds"],
        "comparisons": comparisons,
        "untrained_rows_equal_initial": bool(
            np.array_equal(
                runs["gpt2"][0].table_VxD[runs["gpt2"][0].vocab.counts == 0],
                runs["gpt2"][0].initial_table()[runs["gpt2"][0].vocab.counts == 0],
            )
        ),
        "figures": figures,
    }
    write_json(out / "results.json", results)
    print(f"wrote {out / 'results.json'}" + (f" and {', '.join(figures)}" if figures else ""))
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", nargs="+", default=[], help="raw text (default: Lee corpus)")
    parser.add_argument("--dim", type=int, default=defaults.dim, help="vector size")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--min-count", type=int, default=defaults.min_count)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--topn", type=int, default=defaults.topn)
    parser.add_argument("--queries", nargs="+", default=list(defaults.queries), help="GPT-2 keys")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    args = parser.parse_args(argv)
    args.corpus, args.queries = tuple(args.corpus), tuple(args.queries)
    run(Config(**vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
