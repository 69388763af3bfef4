"""Beyond the lecture: does a word2vec-learned GPT-2 token table help a model learn next tokens?

Skip-gram first learns a table of GPT-2's 50,257 tokens from the training text
(`--tokenizer gpt2`). Then the same small next-token model (`jaxembed.next_token.NextTokenModel`:
token + position vectors, a prefix mean, logits tied to the table) is trained twice on the same
windows: from a random table, and from the word2vec table rescaled to the random table's scale
(its trained rows; untrained rows keep their random values). Training and held-out loss curves
side by side; whichever way it goes is reported.

    python experiments/10_pretrained_token_table.py [--corpus FILE ...] [--epochs 3] [--out DIR]

The default text is gensim's Lee news corpus (offline); the last tenth of its tokens is held out.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Config:
    corpus: tuple[str, ...] = ()  # raw text files; empty: gensim's Lee corpus
    dim: int = 64  # D of the token table (both stages)
    w2v_epochs: int = 10  # skip-gram passes, to learn the initial table
    epochs: int = 3  # next-token passes, for each of the two runs
    context_length: int = 32  # T, tokens per window
    batch_size: int = 32  # windows per step
    max_tokens: int = 0  # next-token stage: use only the first this many tokens (0: all)
    seed: int = 1
    out: str = "runs/experiments/10_pretrained_token_table"  # results.json and figures


def run(config: Config) -> dict:
    """Learns the word2vec table, then the two next-token runs; writes results and a figure."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxembed import objectives, plots
    from jaxembed.corpus import corpus_from_ids, read_corpus
    from jaxembed.data import next_token_batches
    from jaxembed.files import write_json
    from jaxembed.loop import FitConfig, fit
    from jaxembed.next_token import NextTokenModel, next_token_loss
    from jaxembed.train import TrainConfig, init_state, make_optimizer, make_train_step

    out = Path(config.out)
    paths = list(config.corpus) or ["lee"]

    # 1. word2vec on GPT-2 tokens (every token seen is trained: min_count 1)
    w2v = fit(
        paths,
        out / "word2vec",
        TrainConfig(objective="skipgram", dim=config.dim, seed=config.seed),
        FitConfig(epochs=config.w2v_epochs, min_count=1, batch_size=256, tokenizer="gpt2"),
        overwrite=True,
        progress=False,
    )
    print(f"word2vec: {w2v.summary['words']:,} tokens x {config.w2v_epochs} epochs")

    # 2. next-token windows: every token, documents ended by <|endoftext|>; a held-out tenth
    text = read_corpus(paths, min_count=1, tokenizer="gpt2", end_of_text=True)
    ids_N = np.asarray(text.ids_N)
    if config.max_tokens:
        ids_N = ids_N[: config.max_tokens]
    cut = int(0.9 * len(ids_N))
    train_corpus = corpus_from_ids(ids_N[:cut], text.vocab)
    held_out = corpus_from_ids(ids_N[cut:], text.vocab)
    train_config = TrainConfig(
        objective="next-token",
        dim=config.dim,
        context_length=config.context_length,
        seed=config.seed,
    )
    vocab_size = len(text.vocab)
    model = NextTokenModel(vocab_size, config.dim, config.context_length)
    keys = objectives.get("next-token").batch_keys

    @jax.jit
    def held_out_loss(params, batch):
        return next_token_loss(params, model, batch)

    def evaluate(params) -> float:
        total = count = 0.0
        for batch in next_token_batches(held_out, config.context_length, 8, seed=0, epoch=0):
            loss_sum, n = held_out_loss(params, {k: batch[k] for k in keys})
            total, count = total + float(loss_sum), count + float(n)
        return total / max(count, 1.0)

    def train(initial_table) -> dict:
        state = init_state(train_config, vocab_size)
        if initial_table is not None:
            params = jax.tree.map(lambda x: x, state.params)
            params["params"]["embed"]["embedding"] = jnp.asarray(initial_table)
            state = state.replace(
                params=params, opt_state=make_optimizer(train_config).init(params)
            )
        step = make_train_step(train_config)
        curve, held = [], [evaluate(state.params)]
        for epoch in range(config.epochs):
            sums = counts = 0.0
            for batch in next_token_batches(
                train_corpus,
                config.context_length,
                config.batch_size,
                config.seed,
                epoch,
                epochs=config.epochs,
            ):
                state, metrics = step(state, {k: batch[k] for k in keys})
                sums += float(metrics["loss_sum"])
                counts += float(metrics["count"])
            curve.append(sums / counts)
            held.append(evaluate(state.params))
            print(f"  epoch {epoch + 1}: train {curve[-1]:.3f}, held out {held[-1]:.3f}")
        return {"train_loss": curve, "held_out_loss": held}

    random_init = np.asarray(
        init_state(train_config, vocab_size).params["params"]["embed"]["embedding"]
    )
    trained = np.asarray(w2v.vocab.counts) > 0
    table = random_init.copy()
    scale = random_init[trained].std() / w2v.table_VxD[trained].std()
    table[trained] = w2v.table_VxD[trained] * scale  # the random table's scale
    print("next-token from a random table:")
    from_random = train(None)
    print("next-token from the word2vec table (rescaled):")
    from_w2v = train(table)

    figures = []
    fig, (left, right) = plots.figure(ncols=2)
    epochs = np.arange(1, config.epochs + 1)
    plots.line_plot(
        left,
        epochs,
        {"random table": from_random["train_loss"], "word2vec table": from_w2v["train_loss"]},
        "epoch",
        "mean cross-entropy (nats)",
        title="training loss",
    )
    plots.line_plot(
        right,
        np.arange(config.epochs + 1),
        {"random table": from_random["held_out_loss"], "word2vec table": from_w2v["held_out_loss"]},
        "epochs trained",
        "mean cross-entropy (nats)",
        title="held-out loss (last 10% of text)",
    )
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    figures.append(plots.save_figure(fig, out / "next_token_loss.png").name)
    results = {
        "corpus": paths,
        "train_tokens": int(cut),
        "held_out_tokens": int(len(ids_N) - cut),
        "trained_rows": int(trained.sum()),
        "scale": float(scale),
        "from_random": from_random,
        "from_word2vec": from_w2v,
        "held_out_gain": from_random["held_out_loss"][-1] - from_w2v["held_out_loss"][-1],
        "figures": figures,
    }
    write_json(out / "results.json", results)
    print(
        f"held-out loss after {config.epochs} epochs: random {from_random['held_out_loss'][-1]:.3f}"
        f", word2vec {from_w2v['held_out_loss'][-1]:.3f}; wrote {out / 'results.json'}"
    )
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", nargs="+", default=[], help="raw text (default: Lee corpus)")
    for name in (
        "dim",
        "w2v_epochs",
        "epochs",
        "context_length",
        "batch_size",
        "max_tokens",
        "seed",
    ):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--out", default=defaults.out, help="output folder")
    args = parser.parse_args(argv)
    args.corpus = tuple(args.corpus)
    run(Config(**vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
