"""`jaxembed similar | analogy | evaluate | export`: use, score and convert word vectors.

VECTORS is a word2vec/GloVe file, a pretrained name ("glove-6b-50d") or a `jaxembed train` output
directory. Tables go to stdout, progress lines to stderr, so `--json` output can be piped.

    jaxembed similar glove-6b-50d tower computer
    jaxembed analogy glove-6b-50d man king woman          # man : king = woman : ?  -> queen
    jaxembed evaluate glove-6b-50d --json
    jaxembed export glove-6b-50d --limit 10000 --format projector --out projector/
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

_VECTORS_HELP = (
    'word2vec text/binary or GloVe file (.gz/.bz2/.xz too), a pretrained name ("glove-6b-50d") '
    "or an output directory of `jaxembed train`"
)
_EXPORT_FORMATS = ("word2vec", "word2vec-binary", "glove", "projector")


def register(subparsers) -> None:
    """Adds the similar, analogy, evaluate and export subcommands."""
    p = subparsers.add_parser(
        "similar", help="nearest neighbours of words", description="Nearest neighbours (cosine)."
    )
    _add_vectors(p)
    p.add_argument("words", metavar="WORD", nargs="+", help="query words, one table each")
    _add_topn_json(p)
    p.set_defaults(func=run_similar)

    p = subparsers.add_parser(
        "analogy",
        help="A is to B as C is to ?",
        description="A is to B as C is to ?: the words nearest to B - A + C (3CosAdd, as gensim).",
    )
    _add_vectors(p)
    for name in ("a", "b", "c"):
        p.add_argument(name, metavar=name.upper())
    _add_topn_json(p)
    p.set_defaults(func=run_analogy)

    p = subparsers.add_parser(
        "evaluate",
        help="Google analogies, WordSim-353, SimLex-999",
        description="Scores on the standard benchmarks, computed as gensim computes them.",
    )
    _add_vectors(p)
    p.add_argument(
        "--restrict-vocab",
        type=int,
        default=30000,
        metavar="N",
        help="analogies use only the N first (most frequent) words, as is customary (default "
        "30000); word pairs use gensim's default of 300000",
    )
    p.add_argument(
        "--same-words-as",
        metavar="VECTORS2",
        default=None,
        help="score only the words VECTORS2 also has (a GPT-2 run: its single-token words), so "
        "the two scores are comparable",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser(
        "export",
        help="convert vectors to another format",
        description="Write vectors as word2vec text/binary, GloVe text, or vectors.tsv + "
        "metadata.tsv for the TensorFlow Embedding Projector (projector.tensorflow.org).",
    )
    _add_vectors(p)
    p.add_argument("--format", required=True, choices=_EXPORT_FORMATS)
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="output file (.gz/.bz2/.xz compresses); a directory for --format projector",
    )
    p.set_defaults(func=run_export)


def _add_vectors(p: argparse.ArgumentParser) -> None:
    p.add_argument("vectors", metavar="VECTORS", help=_VECTORS_HELP)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="load only the first N vectors (faster on big files, which list frequent words first)",
    )


def _add_topn_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topn", type=int, default=10, help="neighbours to show (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


# ---------------------------------------------------------------------------- commands


def run_similar(args: argparse.Namespace) -> int:
    from jaxembed.vectors import most_similar

    table_VxD, vocab = _load(args, queries=True)
    results, unknown = {}, []
    for word in args.words:  # the known words are answered even if another is unknown
        try:
            results[word] = most_similar(table_VxD, vocab, positive=[word], topn=args.topn)
            _say_token(vocab, word)
        except KeyError as err:
            unknown.append(err.args[0] if err.args else str(err))
    if args.json:
        print(_json(results))
    else:
        for word, neighbours in results.items():
            _print_neighbours(f"nearest to {word!r}", neighbours)
    for message in unknown:
        print(f"jaxembed similar: error: {message}", file=sys.stderr)
    return 2 if unknown else 0


def run_analogy(args: argparse.Namespace) -> int:
    from jaxembed.vectors import most_similar

    table_VxD, vocab = _load(args, queries=True)
    answers = most_similar(
        table_VxD, vocab, positive=[args.b, args.c], negative=[args.a], topn=args.topn
    )
    for word in (args.a, args.b, args.c):
        _say_token(vocab, word)
    if args.json:
        print(_json({"a": args.a, "b": args.b, "c": args.c, "answers": answers}))
        return 0
    title = f"{args.a} is to {args.b} as {args.c} is to ?   ({args.b} - {args.a} + {args.c})"
    _print_neighbours(title, answers)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from jaxembed.evaluate import evaluate_suite
    from jaxembed.vectors import words_of_tokens

    table_VxD, vocab = _load(args)
    if vocab.byte_level:  # a GPT-2 token table: the benchmarks' words that are one token
        n_tokens = len(vocab)
        table_VxD, vocab = words_of_tokens(table_VxD, vocab)
        print(
            f"GPT-2 tokens: scoring the {len(vocab):,} trained tokens that are a word after a "
            f"space ('Ġking' as king) of the {n_tokens:,}, most frequent first",
            file=sys.stderr,
        )
    if args.same_words_as is not None:
        table_VxD, vocab = _same_words(table_VxD, vocab, args.same_words_as)
    results = evaluate_suite(table_VxD, vocab, restrict_vocab=args.restrict_vocab)
    if args.json:
        summary = {"vectors": args.vectors, "words": len(vocab), "dim": int(table_VxD.shape[1])}
        summary |= {"restrict_vocab": args.restrict_vocab, "benchmarks": results}
        print(_json(summary))
        return 0
    rows = []
    for name, r in results.items():
        analogies = name == "questions-words"
        restrict = args.restrict_vocab if analogies else 300000  # gensim's default for pairs
        words = "all" if restrict is None else f"{restrict:,}"
        if "error" in r:
            rows.append((name, "-", "-", "-", words, "-", f"{r['seconds']:.1f}"))
            continue
        metric = "accuracy" if analogies else "spearman"
        # used / in the file: questions answered, or pairs scored
        total = r["questions"] if analogies else r["pairs"] + r["oov"]
        used = f"{r['attempted'] if analogies else r['pairs']}/{total}"
        score = f"{r[metric]:.4f}"
        oov = f"{r['oov_ratio']:.1f}"
        rows.append((name, metric, score, used, words, oov, f"{r['seconds']:.1f}"))
    headers = ("benchmark", "metric", "score", "used", "first words", "oov %", "seconds")
    print(_table(headers, rows, "<<>>>>>"))
    print(
        "first words: the most frequent words that take part (analogies: --restrict-vocab, "
        "30,000 by default as word2vec's C tool; gensim's own default is 300,000)"
    )
    for name, r in results.items():
        if "error" in r:
            print(f"{name}: not scored - {r['error']}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from jaxembed.export import export_projector, save_vectors

    table_VxD, vocab = _load(args)
    if args.format == "projector":
        paths = export_projector(table_VxD, vocab, args.out)
        where = " and ".join(str(p) for p in paths)
    else:
        save_vectors(table_VxD, vocab, args.out, format=args.format)
        where = args.out
    print(f"wrote {len(vocab)} vectors of {table_VxD.shape[1]} values ({args.format}) to {where}")
    return 0


# ---------------------------------------------------------------------------- helpers


def _same_words(table_VxD, vocab, other: str):
    """The rows of the words that the vectors `other` also have (as words), in their order."""
    from jaxembed.io import load_vectors
    from jaxembed.vectors import take_rows, words_of_tokens

    other_table, other_vocab = load_vectors(other)
    if other_vocab.byte_level:
        _, other_vocab = words_of_tokens(other_table, other_vocab)
    keep = set(other_vocab.index_to_key)
    ids = [i for i, key in enumerate(vocab.index_to_key) if key in keep]
    print(
        f"--same-words-as {other}: scoring the {len(ids):,} of {len(vocab):,} words it also has",
        file=sys.stderr,
    )
    if not ids:
        raise ValueError(f"--same-words-as {other}: no word in common - compare tables of words")
    return take_rows(table_VxD, vocab, ids)


def _say_token(vocab, word: str) -> None:
    """A word answered through its GPT-2 token says which token that was."""
    from jaxembed.vectors import token_for

    key = token_for(vocab, word)
    if key is not None and key != word:
        print(f"{word!r} is the token {key!r} (the word after a space)", file=sys.stderr)


def _load(args: argparse.Namespace, queries: bool = False):
    """The vectors of args.vectors; for queries, a GPT-2 table's trained rows only."""
    from jaxembed.io import load_vectors

    start = time.perf_counter()
    try:
        table_VxD, vocab = load_vectors(args.vectors, limit=args.limit)
    except ImportError as err:  # the optional GloVe package: the message says what to install
        raise ValueError(str(err)) from err
    seconds = time.perf_counter() - start
    print(
        f"loaded {len(vocab)} vectors of {table_VxD.shape[1]} values from {args.vectors} "
        f"in {seconds:.1f} s",
        file=sys.stderr,
    )
    if queries:
        from jaxembed.vectors import trained_rows

        if vocab.byte_level:
            n_tokens = len(vocab)
            table_VxD, vocab = trained_rows(table_VxD, vocab)
            if len(vocab) < n_tokens:
                print(
                    f"GPT-2 tokens: ranking the {len(vocab):,} tokens trained (count > 0 in "
                    f"vocab.txt) of the {n_tokens:,}",
                    file=sys.stderr,
                )
    return table_VxD, vocab


def _json(obj) -> str:
    """Strict JSON: NaN and infinities (not JSON) become null."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), ensure_ascii=False, allow_nan=False)


def _print_neighbours(title: str, neighbours: list[tuple[str, float]]) -> None:
    rows = [(str(rank), word, f"{score:.4f}") for rank, (word, score) in enumerate(neighbours, 1)]
    print(title)
    print(_table(("rank", "word", "cosine"), rows, "><>"))
    print()


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> str:
    """Plain-text columns; `align` has one "<" (left) or ">" (right) per column."""
    widths = [max(len(c) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines)
