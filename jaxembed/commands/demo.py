"""`jaxembed demo`: the lecture's whole pipeline, end to end, on data shipped with the dependencies.

text -> word tokens -> token IDs -> a random table -> word2vec training -> neighbours and an
analogy; then GloVe's king + woman - man when the glove extra is installed. The text is gensim's
Lee news corpus (60,000 words, in every gensim install) unless --corpus names other files.
DIR/report.md tells the story with the numbers of this run and the figures beside it.

    jaxembed demo --out demo-out          # about a minute on 2 CPU cores
    jaxembed demo --out demo-out --quick  # seconds: a smoke test with fewer epochs

The pipeline and the report are `jaxembed.demo`'s; this module turns flags into a DemoConfig.
"""

from __future__ import annotations

import argparse

from jaxembed.demo import DemoConfig


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
    p.add_argument(
        "--min-count",
        type=int,
        default=defaults.min_count,
        help=f"drop words seen fewer times (default {defaults.min_count})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help=f"initial table and sampling (default {defaults.seed})",
    )
    p.add_argument("--no-glove", action="store_true", help="skip the GloVe part")
    p.add_argument("--quick", action="store_true", help="a smoke test: 5 epochs of 16-d vectors")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """The `demo` command: flags -> DemoConfig -> `jaxembed.demo.run`."""
    from jaxembed.demo import run

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
    run(config, log=lambda line: print(line, flush=True))
    return 0
