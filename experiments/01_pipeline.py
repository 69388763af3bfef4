"""Demonstration 1: text -> tokens -> token IDs -> vectors, with word tokens and with GPT-2 BPE.

The lecture's pipeline on "this is an example": a word-level tokenizer gives one token per word,
an alphabetical vocabulary gives each an ID, and a random embedding table gives each ID a vector.
GPT-2 does the same with byte-pair encoding (subword tokens, vocabulary 50,257).

    python experiments/01_pipeline.py [--text TEXT] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Config:
    text: str = "this is an example"  # the lecture's input text
    subword_text: str = "Token embeddings are unbelievably useful"  # shows BPE splitting words
    dim: int = 4  # vector size of the toy word-level table
    gpt2_dim: int = 768  # GPT-2 small's vector size (its table is 50,257 x 768)
    seed: int = 0  # seed of the random tables
    out: str = "runs/experiments/01_pipeline"  # where results.json goes


def run(config: Config) -> dict:
    """Runs the pipeline both ways, prints each step and writes results.json."""
    import jax
    import numpy as np

    from jaxembed.embed import init_table, lookup
    from jaxembed.files import write_json
    from jaxembed.tokenize import gpt2_tokenizer, split_words
    from jaxembed.vocab import Vocab

    key_words, key_gpt2 = jax.random.split(jax.random.key(config.seed))
    np.set_printoptions(precision=3, suppress=True)

    # Word level: the vocabulary is the text's own words, alphabetically.
    tokens = split_words(config.text)
    vocab = Vocab.build(tokens, order="alphabetical")
    ids_N = vocab.encode(tokens)
    table_VxD = init_table(key_words, len(vocab), config.dim)
    vectors_NxD = lookup(table_VxD, ids_N)
    print(f"text:    {config.text!r}")
    print(f"tokens:  {tokens}")
    print(f"vocab:   {dict(vocab.key_to_index)}")
    print(f"IDs:     {ids_N.tolist()}")
    print(
        f"vectors: ({len(vocab)} x {config.dim} random table, one row per ID)\n{np.asarray(vectors_NxD)}"
    )

    # GPT-2: byte-pair encoding; a word may become several subword tokens.
    encoding = gpt2_tokenizer()
    gpt2 = {}
    for name, text in (("text", config.text), ("subword_text", config.subword_text)):
        gpt2_ids = encoding.encode_ordinary(text)
        pieces = [
            encoding.decode_single_token_bytes(i).decode("utf-8", "replace") for i in gpt2_ids
        ]
        gpt2[name] = {"text": text, "tokens": pieces, "ids": gpt2_ids}
        print(f"\nGPT-2 BPE: {text!r}\n  tokens: {pieces}\n  IDs:    {gpt2_ids}")
    gpt2_table_VxD = init_table(key_gpt2, encoding.n_vocab, config.gpt2_dim, stddev=0.02)
    gpt2_vectors_NxD = lookup(gpt2_table_VxD, gpt2["text"]["ids"])
    print(
        f"  vocabulary {encoding.n_vocab:,}; table {gpt2_table_VxD.shape}; "
        f"vectors of {config.text!r}: {gpt2_vectors_NxD.shape}"
    )

    results = {
        "text": config.text,
        "word_tokens": tokens,
        "word_vocab": list(vocab.index_to_key),
        "word_ids": ids_N,
        "word_vectors": vectors_NxD,
        "word_vectors_shape": vectors_NxD.shape,
        "gpt2": gpt2,
        "gpt2_vocab_size": encoding.n_vocab,
        "gpt2_table_shape": gpt2_table_VxD.shape,
        "gpt2_vectors_shape": gpt2_vectors_NxD.shape,
        "gpt2_round_trip": encoding.decode(gpt2["subword_text"]["ids"]) == config.subword_text,
    }
    write_json(Path(config.out) / "results.json", results)
    print(f"\nwrote {Path(config.out) / 'results.json'}")
    return results


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=defaults.text, help="the text to embed")
    parser.add_argument(
        "--subword-text", default=defaults.subword_text, help="a second text for BPE"
    )
    parser.add_argument("--dim", type=int, default=defaults.dim, help="word-level vector size")
    parser.add_argument("--gpt2-dim", type=int, default=defaults.gpt2_dim, help="GPT-2 vector size")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=defaults.out, help="output folder")
    run(Config(**vars(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
