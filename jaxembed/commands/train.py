"""`jaxembed train CORPUS... --out DIR`: learn a table (word2vec skip-gram/CBOW or next-token).

The flags are those a gensim user looks for, under their gensim names where they differ:
--dim is gensim's vector_size, --lr its alpha, --min-lr its min_alpha.

    jaxembed train corpus.txt.xz --objective skipgram --dim 200 --window 5 --negative 5 \\
        --sample 1e-4 --min-count 5 --epochs 5 --out w2v
    jaxembed train corpus.txt.xz --out w2v --resume        # continue a killed run
    jaxembed similar w2v king                               # use the result
"""

from __future__ import annotations

import argparse
import os
import sys

# gensim's flags that have no meaning here, and why.
_REFUSED = {
    "--hs": "hierarchical softmax is not implemented: jaxembed trains with negative sampling "
    "(--negative)",
    "--workers": "XLA uses all the cores of the machine; to use fewer, run under taskset",
    "--cbow-mean": "jaxembed's CBOW always averages the context vectors (gensim's cbow_mean=1)",
}


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default only where there is one to show (not None, not a switch)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.required:
            return action.help
        if "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Refused(argparse.Action):
    """A gensim flag with no meaning here: refused with the reason."""

    def __init__(self, option_strings, dest, why: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.why = why

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string == "--cbow-mean" and values in ("1", None):
            return  # what jaxembed does anyway
        parser.error(f"{option_string}: {self.why}")


class _Sg(argparse.Action):
    """gensim's --sg 1 / --sg 0: skip-gram or CBOW."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, "skipgram" if values == 1 else "cbow")


def register(subparsers) -> None:
    """Adds the `train` subcommand."""
    p = subparsers.add_parser(
        "train",
        allow_abbrev=False,  # --resume tells the flags given from the defaults by their names
        help="learn an embedding table from text",
        description="Learn a token table from text files: word2vec skip-gram or CBOW with "
        "negative sampling, or next-token prediction. Writes DIR/vectors.txt (word2vec text "
        "format), vocab.txt, table.npy and run.json; checkpoints go to DIR/checkpoints.",
        formatter_class=DefaultsHelp,
    )
    p.add_argument(
        "corpus",
        metavar="CORPUS",
        nargs="+",
        help="text files (.xz/.gz/.bz2 too), one sentence or document a line; or lee, gensim's "
        "Lee news corpus (60k words, ships with gensim)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--objective",
        default="skipgram",
        metavar="NAME",
        help="skipgram or cbow (word2vec), or next-token (jaxembed.objectives.OBJECTIVES)",
    )
    p.add_argument(
        "--sg",
        dest="objective",  # another spelling of --objective: given_flags sees it as that
        type=int,
        choices=(0, 1),
        default=argparse.SUPPRESS,  # --objective's default stands
        action=_Sg,
        help="gensim's switch: 1 = --objective skipgram, 0 = --objective cbow",
    )
    for flag, why in _REFUSED.items():
        p.add_argument(flag, nargs="?", action=_Refused, why=why, help=argparse.SUPPRESS)
    g = p.add_argument_group("model")
    g.add_argument("--dim", "--vector-size", "--size", type=int, default=100, help="vector size D")
    g.add_argument("--window", type=int, default=5, help="max centre-context distance")
    g.add_argument("--negative", type=int, default=5, help="noise words per pair")
    g.add_argument(
        "--ns-exponent",
        type=float,
        default=0.75,
        help="noise words are drawn from counts ** this (gensim's ns_exponent; word2vec.c's 0.75, "
        "fastText's 0.5)",
    )
    g.add_argument(
        "--share-negatives",
        type=int,
        default=None,
        help="consecutive pairs (cbow: centres) sharing one draw of noise words (each still sees "
        "--negative words from word2vec's noise distribution; default 64 for skipgram, 16 for "
        "cbow); 1 = a draw per pair as word2vec.c, slower on CPU (BENCHMARKS.md)",
    )
    g.add_argument("--context-length", type=int, default=64, help="next-token: tokens per sequence")
    g.add_argument(
        "--stride",
        type=int,
        default=None,
        help="next-token: tokens between window starts (default: --context-length, no overlap)",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--tokenizer",
        choices=("whitespace", "words", "gpt2"),
        default="whitespace",
        help="how lines become tokens: whitespace (str.split, as gensim's LineSentence), words "
        "(words and punctuation apart: raw prose) or gpt2 (GPT-2's 50,257 BPE tokens; row i of "
        "table.npy is token i; tokens rarer than --min-count keep an untrained row, count 0 in "
        "vocab.txt)",
    )
    g.add_argument("--lowercase", action="store_true", help="fold case (whitespace, words)")
    g.add_argument(
        "--end-of-text",
        action="store_true",
        help="gpt2: end each line (a document) with <|endoftext|>, for next-token training",
    )
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="keep the corpus's token IDs in DIR (memory-mapped, 4 bytes a token); a later run "
        "on the same files with the same --tokenizer, --lowercase and --end-of-text loads them "
        "instead of reading the text again",
    )
    g.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold; 0 = off")
    g.add_argument("--min-count", type=int, default=5, help="drop rarer words")
    g.add_argument("--max-vocab", type=int, default=None, help="keep the most frequent words")
    g.add_argument("--epochs", "--iter", type=int, default=5, help="passes over the corpus")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="examples per step (default on a CPU: 4096 pairs for skipgram, 512 centres for "
        "cbow, 32 sequences for next-token; on a GPU or TPU 65536 pairs, 4096 centres; "
        "--resume keeps the run's own)",
    )
    g.add_argument(
        "--steps-per-call",
        type=int,
        default=None,
        help="steps in one jitted call (default: 16, 64 for cbow; 256 for next-token on a GPU "
        "or TPU; --resume keeps the run's own)",
    )
    g.add_argument(
        "--batches",
        choices=("auto", "host", "device"),
        default="auto",
        help="where word2vec batches are made: host (a numpy thread, the faster on a CPU) or "
        "device (jitted, on the GPU/TPU that trains; jaxembed.device_batches); auto: device on "
        "a GPU or TPU, else host",
    )
    g.add_argument(
        "--shuffle-words",
        type=int,
        default=None,
        help="word2vec: each batch is drawn from a chunk of this many corpus words, shuffled "
        "(default: 1M words on the host, 4M on the device, or 64 x --batch-size where more, up "
        "to 16M: a large batch from a short chunk diverged; --resume keeps the run's own)",
    )
    g = p.add_argument_group("optimiser")
    g.add_argument(
        "--optimizer",
        choices=("sgd", "adam", "adamw"),
        default=None,
        help="optax optimiser (default: the objective's: sgd for word2vec, adam for next-token)",
    )
    g.add_argument(
        "--lr",
        "--alpha",
        type=float,
        default=None,
        help="initial learning rate (default: the objective's: 0.025 for skipgram, 0.05 for cbow "
        "as word2vec.c and fastText (gensim: 0.025), 0.003 for "
        "next-token)",
    )
    g.add_argument(
        "--min-lr",
        "--min-alpha",
        type=float,
        default=None,
        help="final learning rate (default: the objective's: 0.0001 for word2vec, 0.0003 for "
        "next-token)",
    )
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's weight decay")
    g.add_argument(
        "--update",
        choices=("auto", "sparse", "dense"),
        default="auto",
        help="update only the rows a batch touches (sparse) or the whole table (dense)",
    )
    g.add_argument(
        "--row-scale",
        choices=(
            "auto",
            "none",
            "count",
            "sqrt",
            "cap",
            "newton",
            "sequential",
            "joint",
            "implicit",
        ),
        default="auto",
        help="word2vec, sparse SGD: how a row's summed gradient in a batch is applied: as is "
        "(none), divided by its contributions in the batch (count), their square root (sqrt), "
        "by contributions / --row-cap above --row-cap (cap), or sized by the curvature of the "
        "batch's loss along it (newton: at most a Newton step; sequential: newton, the output "
        "rows after the input rows have moved; joint: both rows of a score "
        "share its Newton step; implicit: the proximal step, lr / (1 + lr x curvature) in each "
        "of --row-directions); auto: none up to the "
        "objective's default --batch-size, newton above it (BENCHMARKS.md, section 7)",
    )
    g.add_argument("--row-cap", type=int, default=32, help="--row-scale cap's contributions")
    g.add_argument(
        "--row-step-max",
        type=float,
        default=None,
        help="with a curvature --row-scale (newton ...): no row moves further than this in one "
        "step (default: no limit, but 1.0 where --row-scale auto takes newton steps above "
        "262,144 skip-gram pairs: it keeps them stable at 512k-1M)",
    )
    g.add_argument(
        "--row-passes",
        type=int,
        default=None,
        help="with --row-scale newton (or auto above the default batch): passes a step makes over "
        "its batch, the rows stopped at a minimum moving on from it (default: 1; 2 above "
        "131,072 skip-gram pairs or 32,768 CBOW centres, 4 above 524,288 pairs); with "
        "implicit: implicit steps of lr / passes each (default: 1)",
    )
    g.add_argument(
        "--row-directions",
        type=int,
        help="newton's or implicit's: directions of each row's curvature its step resolves (1: "
        "along its summed gradient; 2+, newton 2 only: a frequent row's stiff directions stop at "
        "their minimum while the others move as plain SGD would); default 1, 2 where auto takes "
        "newton steps above 262,144 skip-gram pairs or 65,536 CBOW centres",
    )
    g.add_argument(
        "--row-balance",
        choices=("on", "off"),
        default=None,
        help="skip-gram, sparse SGD: after each step, rebalance the input and output tables (the same "
        "scores) as the small steps of the default --batch-size would have left them; default "
        "off, on where auto takes newton steps above 262,144 skip-gram pairs",
    )
    g.add_argument(
        "--table-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="word2vec, sparse SGD: the tables' dtype; bfloat16 halves their memory and the "
        "bytes a step moves (a GPU step's bound), computing in float32 and rounding each row "
        "set back at random (BENCHMARKS.md, section 7)",
    )
    g.add_argument("--seed", type=int, default=1, help="random seed")
    g = p.add_argument_group("run")
    g.add_argument("--checkpoint-every", type=int, default=0, help="steps; 0 = at the end only")
    g.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept")
    g.add_argument("--max-steps", type=int, default=None, help="stop early (resume later)")
    g.add_argument("--resume", action="store_true", help="continue the run in DIR")
    g.add_argument("--overwrite", action="store_true", help="replace the run in DIR")
    g.add_argument(
        "--devices",
        type=int,
        default=None,
        help="CPU only: split the host into this many XLA devices (sets XLA_FLAGS)",
    )
    g.add_argument(
        "--mesh",
        default=None,
        metavar="DATAxMODEL",
        help="device mesh, e.g. 4x2: batches split 4 ways, table rows 2 ways (default: all data)",
    )
    g.add_argument(
        "--split",
        choices=("rows", "columns"),
        default="rows",
        help="how the mesh's model devices split the tables: vocabulary rows (memory) or vector "
        "columns (speed on a multi-core CPU)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def _parse_mesh(text: str | None, devices: int | None) -> tuple[int, int] | None:
    if text is None:
        return None if devices is None else (devices, 1)
    try:
        data, model = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(
            f"--mesh must look like 4x2 (data x model devices); got {text!r}"
        ) from None
    return data, model


def _quiet_closed_loop_callbacks() -> None:
    """After a failed checkpoint write, tensorstore's callbacks find orbax's event loop closed
    and report each "RuntimeError: Event loop is closed" (sys.excepthook, sys.unraisablehook):
    drop those, the error that stopped the run is reported on its own. Installed once."""
    if getattr(sys.excepthook, "quiet_closed_loop", False):
        return

    def closed_loop(kind, value) -> bool:
        return kind is RuntimeError and str(value) == "Event loop is closed"

    previous, previous_unraisable = sys.excepthook, sys.unraisablehook

    def hook(kind, value, traceback):
        if not closed_loop(kind, value):
            previous(kind, value, traceback)

    def unraisable(info):
        if not closed_loop(info.exc_type, info.exc_value):
            previous_unraisable(info)

    hook.quiet_closed_loop = True
    sys.excepthook, sys.unraisablehook = hook, unraisable


def _take_saved_settings(args: argparse.Namespace) -> None:
    """--resume: the flags not given take the run's saved settings (given ones are compared)."""
    from jaxembed import rundir

    saved = rundir.saved_settings(args.out)
    given = getattr(args, "given", set())
    for group in ("train", "fit"):
        for name, value in saved.get(group, {}).items():
            if hasattr(args, name) and name not in given:
                setattr(args, name, value)


def run_train(args: argparse.Namespace) -> int:
    """Runs `jaxembed train`; returns the exit code."""
    if args.devices is not None:
        if args.devices < 1:
            raise ValueError(f"--devices must be a positive integer; got {args.devices}")
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    import logging

    from jaxembed.loop import FitConfig, fit
    from jaxembed.train import TrainConfig

    # orbax logs each failed background write with its traceback (hundreds of lines on a full
    # disk); the error that stops the run is reported once, by jaxembed.cli.
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    _quiet_closed_loop_callbacks()

    if args.resume:
        _take_saved_settings(args)
    train = TrainConfig(
        objective=args.objective,
        dim=args.dim,
        negative=args.negative,
        share_negatives=args.share_negatives,
        ns_exponent=args.ns_exponent,
        optimizer=args.optimizer,
        lr=args.lr,
        min_lr=args.min_lr,
        weight_decay=args.weight_decay,
        update=args.update,
        row_scale=args.row_scale,
        row_cap=args.row_cap,
        row_step_max=args.row_step_max,
        row_passes=args.row_passes,
        row_directions=args.row_directions,
        row_balance=None if args.row_balance is None else args.row_balance == "on",
        table_dtype=args.table_dtype,
        context_length=args.context_length,
        seed=args.seed,
    )
    config = FitConfig(
        window=args.window,
        sample=args.sample,
        min_count=args.min_count,
        max_vocab=args.max_vocab,
        tokenizer=args.tokenizer,
        lowercase=args.lowercase,
        end_of_text=args.end_of_text,
        cache_dir=args.cache_dir,
        stride=args.stride,
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps_per_call=args.steps_per_call,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        max_steps=args.max_steps,
        mesh=_parse_mesh(args.mesh, args.devices),
        split=args.split,
        batches=args.batches,
        shuffle_words=args.shuffle_words,
    )
    summary = fit(
        args.corpus,
        args.out,
        train,
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    ).summary
    rate = summary["words_per_second"] or 0.0
    unit = "tokens" if config.tokenizer == "gpt2" else "words"
    # the first call compiled the step: on a GPU the rate after it is what the steps make
    after = summary.get("words_per_second_after_first_call")
    first = summary.get("first_call_seconds")
    steady = f"; {after:,.0f} after the first call's {first:.1f} s" if after else ""
    print(
        f"{summary['words']:,} {unit} in {summary['train_seconds']:.1f} s ({rate:,.0f} {unit}/s"
        f"{steady}), "
        f"loss {summary['loss']:.4f}, vocabulary {summary['vocab_size']:,}, "
        f"wall {summary['wall_seconds']:.1f} s",
        file=sys.stderr,
    )
    if not summary["finished"]:
        print(
            f"stopped after {summary['steps']} steps (--max-steps stops at the end of a call of "
            f"--steps-per-call {summary['settings']['fit']['steps_per_call']} steps); continue "
            "with --resume",
            file=sys.stderr,
        )
    else:
        names = ", ".join(
            os.path.join(args.out, n) for n in ("vectors.txt", "vocab.txt", "table.npy")
        )
        print(f"wrote {names} and run.json", file=sys.stderr)
    return 0
