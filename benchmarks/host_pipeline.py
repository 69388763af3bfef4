"""Host batch pipeline: examples/s of `jaxembed.data` with 1, 2, ... threads, no training step.

    python benchmarks/host_pipeline.py [--quick] [--threads 1 2] [--json-out host_pipeline.json]

How fast can the host make word2vec batches, and does it scale with threads? The corpus is cut
into T parts of whole sentences (`corpus_from_ids`); T threads each draw one epoch of
`skipgram_batches` / `cbow_batches` over their part (numpy releases the GIL in its array
loops, not between them). Reported: examples (pairs or CBOW centres) and raw corpus words per
second of wall time, and the ratio to one thread, with the load average beside them. The
training step consumes ~1-1.5M raw words/s on 2 CPU cores (BENCHMARKS.md, section 2); an
accelerator's step needs far more (section 7).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
from _bench import (
    add_common_args,
    machine_info,
    machine_line,
    markdown_table,
    require_file,
    shared_data,
    write_json,
)

from jaxembed import data, objectives
from jaxembed.corpus import corpus_from_ids, read_corpus


def split_corpus(corpus, parts: int) -> list:
    """`parts` corpora of whole sentences, about equal in words."""
    starts = np.asarray(corpus.sentence_starts)
    cuts = np.searchsorted(starts, np.linspace(0, starts[-1], parts + 1)[1:-1])
    bounds = [0, *[int(c) for c in cuts], len(starts) - 1]
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        ids = np.asarray(corpus.ids_N[starts[a] : starts[b]])
        pieces.append(corpus_from_ids(ids, corpus.vocab, starts[a : b + 1] - starts[a]))
    return pieces


def one_epoch(part, objective: str, batch_size: int, seed: int, out: list) -> None:
    make = data.skipgram_batches if objective == "skipgram" else data.cbow_batches
    examples = 0
    for batch in make(part, 5, 1e-4, batch_size, seed=seed, epoch=0):
        examples += int(batch["mask_B"].sum())
    out.append(examples)


def measure(corpus, objective: str, threads: int, batch_size: int) -> dict:
    parts, out = split_corpus(corpus, threads), []
    workers = [
        threading.Thread(target=one_epoch, args=(p, objective, batch_size, i, out))
        for i, p in enumerate(parts)
    ]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    examples = sum(out)
    words = corpus.n_raw_words  # the parts hold every kept word
    return {
        "objective": objective,
        "threads": threads,
        "seconds": seconds,
        "examples_per_s": examples / seconds,
        "raw_words_per_s": words / seconds,
        "load_average": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--corpus", default=shared_data("corpus-en-11m.txt.xz"))
    parser.add_argument("--threads", type=int, nargs="+", default=None)
    parser.add_argument("--objective", nargs="+", default=["skipgram", "cbow"])
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    threads = args.threads or sorted({1, 2, cores})
    path = require_file(args.corpus, example="a text file, one sentence a line")
    info = machine_info()
    print(machine_line(info))
    corpus = read_corpus(path, 5)
    if args.quick:
        corpus = split_corpus(corpus, 10)[0]
    print(f"corpus: {path}, {corpus.n_raw_words:,} raw words, {len(corpus.ids_N):,} kept")
    results = []
    for _ in range(1 if args.quick else args.repeats):
        for objective in args.objective:
            batch_size = objectives.get(objective).batch_size  # the training default
            for t in threads:  # alternating: each round measures every count once
                results.append(measure(corpus, objective, t, batch_size))
    rows = []
    for objective in args.objective:
        ones = [
            r["examples_per_s"]
            for r in results
            if r["objective"] == objective and r["threads"] == 1
        ]
        base = float(np.median(ones)) if ones else None
        for t in threads:
            runs = [r for r in results if r["objective"] == objective and r["threads"] == t]
            rate = float(np.median([r["examples_per_s"] for r in runs]))
            words = float(np.median([r["raw_words_per_s"] for r in runs]))
            rows.append(
                [
                    objective,
                    t,
                    f"{rate / 1e6:.2f}M",
                    f"{words / 1e6:.2f}M",
                    "" if base is None else f"{rate / base:.2f}x",
                    " / ".join(f"{r['load_average']:.2f}" for r in runs),
                ]
            )
    headers = ["objective", "threads", "examples/s", "raw words/s", "vs 1 thread", "load (1 min)"]
    print(markdown_table(headers, rows))
    write_json(args.json_out, {"machine": info, "corpus": path, "results": results})


if __name__ == "__main__":
    main()
