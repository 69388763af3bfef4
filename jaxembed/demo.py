"""`jaxembed demo` as a library: the lecture's whole pipeline, end to end, and its report.

text -> word tokens -> token IDs -> a random table -> word2vec training -> neighbours and an
analogy; then GloVe's king + woman - man when the glove extra is installed. The text is gensim's
Lee news corpus (60,000 words, in every gensim install) unless `DemoConfig.corpus` names other
files; training follows `jaxembed.lecture.LEE`. DIR/report.md tells the story with the numbers of
this run and the figures beside it. The command (`jaxembed/commands/demo.py`) only turns flags
into a DemoConfig.

    >>> results = run(DemoConfig(out="demo-out", epochs=5, dim=16, glove=False), log=lambda line: None)
    >>> results["vocab_size"], sorted(results)[:3]
    (2863, ['analogies', 'corpus', 'example_ids'])
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxembed.files import atomic_open
from jaxembed.lecture import LEE, LEE_PAIRS

LEE_QUERIES = ("fire", "afghanistan", "police", "government")  # words whose neighbours we show


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What `jaxembed demo` runs; each field is a flag of the command."""

    out: str = "demo-out"  # folder of report.md, the figures and the trained run
    corpus: tuple[str, ...] = ()  # text files (.xz/.gz/.bz2 too); empty: gensim's Lee corpus
    max_lines: int | None = None  # read only the first lines of the corpus
    dim: int = LEE.dim  # D, the vector size
    epochs: int = LEE.epochs  # passes over the corpus (a small corpus needs many)
    min_count: int = LEE.min_count  # drop rarer words
    seed: int = LEE.seed  # initial table and sampling
    glove: bool = True  # also query GloVe 6B 50-d when the glove extra is installed


def run(config: DemoConfig, log: Callable[[str], Any] = print) -> dict:
    """Runs every stage, reporting progress through `log`, and writes report.md.

    Args:
      config: what to run.
      log: called with each progress line (print by default; a no-op silences it).

    Returns:
      The numbers of the run, as written to DIR/results.json.
    """
    from jaxembed.files import write_json
    from jaxembed.lecture import (
        analogy_accuracy,
        default_corpus,
        glove_queries,
        learn_and_compare,
        meaning_figure,
        prepare_corpus,
    )
    from jaxembed.vectors import most_similar

    def stage(number: int, title: str, detail=None) -> None:
        suffix = f" ({', '.join(Path(p).name for p in detail)})" if detail else ""
        log(f"[{number}/5] {title}{suffix}")

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = list(config.corpus) or [default_corpus()]

    stage(1, "text -> word tokens", paths)
    sentences = lecture_tokens()
    for row in sentences:
        log(f"  {row['text']!r}\n    words {row['words']}\n    GPT-2 {row['gpt2_ids']}")
    corpus_path = out / "corpus.txt"
    tokens = prepare_corpus(paths, corpus_path, config.max_lines)
    log(f"  {tokens['lines']:,} lines, {tokens['tokens']:,} tokens -> {corpus_path}")
    log(f"  {tokens['example_text'][:70]!r}...\n  -> {tokens['example_tokens'][:10]}...")

    stage(2, "tokens -> IDs -> random table -> trained table (word2vec skip-gram)")
    recipe = dataclasses.replace(
        LEE, dim=config.dim, epochs=config.epochs, min_count=config.min_count, seed=config.seed
    )
    learned = learn_and_compare(corpus_path, out, *recipe.configs(), LEE_PAIRS, log)
    before_VxD, after_VxD, vocab = learned["before_VxD"], learned["after_VxD"], learned["vocab"]
    summary, figures = learned["summary"], learned["figures"]
    example_ids = [vocab.key_to_index.get(t) for t in tokens["example_tokens"][:10]]
    shown = ["(not in vocabulary)" if i is None else i for i in example_ids]
    log(f"  IDs of the first tokens: {shown}")

    stage(3, "nearest neighbours and an analogy on the trained vectors")
    queries = [q for q in LEE_QUERIES if q in vocab]
    neighbours = {q: most_similar(after_VxD, vocab, positive=[q], topn=6) for q in queries}
    random_neighbours = {q: most_similar(before_VxD, vocab, positive=[q], topn=6) for q in queries}
    for q in queries:
        log(f"  {q}: " + ", ".join(w for w, _ in neighbours[q]))
    analogies = analogy_accuracy(after_VxD, vocab)
    log(
        f"  Google analogies answerable with this vocabulary: {analogies['attempted']}, "
        f"correct {analogies['correct']} ({100 * analogies['accuracy']:.1f}%)"
    )

    glove = glove_queries(True) if config.glove else {"skipped": "glove=False (--no-glove)"}
    figures.append(meaning_figure(out, glove.pop("vectors", None)))
    stage(4, "pretrained GloVe 6B 50-d: king + woman - man")
    if "analogy" in glove:
        log("  " + ", ".join(f"{w} ({s:.3f})" for w, s in glove["analogy"]))
    else:
        log(f"  skipped: {glove['skipped']}")

    results = {
        "corpus": [os.fspath(p) for p in paths],
        "lecture_sentences": sentences,
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
    stage(5, "report")
    write_json(out / "results.json", results)
    write_report(out, config, results)
    log(f"  wrote {out / 'report.md'} and {len(figures)} figures in {results['seconds']:.0f} s")
    return results


def lecture_tokens() -> list[dict]:
    """The lecture's sentences as word tokens and as GPT-2 tokens (keys and IDs)."""
    from jaxembed.lecture import LECTURE_SENTENCES
    from jaxembed.tokenize import gpt2_keys, gpt2_tokenizer, split_words

    enc, keys = gpt2_tokenizer(), gpt2_keys()
    rows = []
    for text in LECTURE_SENTENCES:
        ids = enc.encode_ordinary(text)
        rows.append(
            {
                "text": text,
                "words": split_words(text),
                "gpt2_ids": ids,
                "gpt2_tokens": [keys[i] for i in ids],
            }
        )
    return rows


def write_report(out, config: DemoConfig, results: dict) -> Path:
    """Writes out/report.md from `run`'s results (atomically)."""

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
        "The lecture's sentences, cut by the word-level tokenizer (`split_words`) and by GPT-2's "
        "byte-pair encoding (tiktoken, 50,257 tokens; Ġ marks a leading space, as in GPT-2's "
        "encoder.json):",
        "",
        "| text | word tokens | GPT-2 tokens | GPT-2 IDs |",
        "| --- | --- | --- | --- |",
        *[
            f"| {r['text']} | {' '.join(r['words'])} | {' '.join(r['gpt2_tokens'])} | "
            f"{' '.join(map(str, r['gpt2_ids']))} |"
            for r in results.get("lecture_sentences", [])
        ],
        "",
        "A word GPT-2 has seen often is one token (Ġking); a rarer one is cut into pieces ("
        + "; ".join(
            f"{w}: {' + '.join(p)}" for w, p in _split_words(results.get("lecture_sentences", []))
        )
        + "). The IDs say nothing about meaning, nor do one-hot vectors; hand-made features and "
        "learned vectors do:",
        "",
        "![four similarity matrices](meaning.png)",
        "",
        "*Figure 1. Cosine similarity of dog, cat, apple and banana in four representations: "
        "random IDs (how close the numbers are: an accident of numbering), one-hot vectors "
        "(every distinct pair 0), the lecture's hand-made features, and learned GloVe vectors "
        "(dog~cat and apple~banana high, without anyone writing features).*",
        "",
        "The word tokens of the training corpus's first line:",
        "",
        f"> {_shorten(results['tokens']['example_text'], 200)}",
        "",
        f"Word tokens: `{' '.join(results['tokens']['example_tokens'][:10])} ...`",
        "",
        "Token IDs: `"
        + " ".join("(not in vocabulary)" if i is None else str(i) for i in results["example_ids"])
        + f" ...` (not in vocabulary: a word seen fewer than {config.min_count} times)",
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
        "*Figure 2. Mean skip-gram loss per epoch: the table learns to tell the words around a "
        "word from random noise words.*",
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
            "*Figure 3. The pairs above on the two principal axes of their vectors, random table "
            "(left) and trained (right); an arrow joins a (blue) to b (red). Each panel has its "
            "own scale: random vectors start tiny, trained ones grow. After training the arrows "
            "are short: related words sit together.*",
            "",
            "![similarity before and after](similarity_before_after.png)",
            "",
            "*Figure 4. Cosine similarity of the same words, in pair order (al, qaeda, osama, "
            "laden, ...), minus its mean: trained word2vec vectors share a common direction, so "
            "every cosine rises, and the related pairs show as red 2 x 2 blocks along the "
            "diagonal.*",
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
        "need corpora of many millions of words (try a larger corpus: --corpus FILE); pretrained "
        "vectors trained on billions of words show them, below.",
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


def _split_words(rows) -> list[tuple[str, list[str]]]:
    """The words of the lecture's sentences that GPT-2 cuts into several tokens, with the pieces."""
    from jaxembed.tokenize import gpt2_pieces

    found = {}
    for row in rows:
        for word in row["words"]:
            pieces = gpt2_pieces(word)
            if len(pieces) > 1 and word[0].isalpha():
                found[word] = pieces
    return list(found.items())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."
