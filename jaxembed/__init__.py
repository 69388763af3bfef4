"""jaxembed: token embeddings in JAX/Flax.

    text --tokenize--> tokens --Vocab--> token IDs --embedding table--> vectors --> model

The public API, by pipeline step (each name lives in the module named beside it). Names are
imported on first use (PEP 562), so `import jaxembed` and `jaxembed --help` do not wait for JAX.

    >>> import jaxembed as je
    >>> je.Vocab.build(["quick", "fox"]).encode(["fox"]).tolist()
    [0]
"""

import importlib

# module -> the public names it defines, in pipeline order
_API = {
    # text -> tokens
    "tokenize": (
        "split_words",
        "join_words",
        "gpt2_tokenizer",
        "gpt2_encode",
        "gpt2_keys",
        "gpt2_key",
        "gpt2_token_bytes",
        "GPT2_N_VOCAB",
        "GPT2_ENDOFTEXT_ID",
    ),
    # tokens -> IDs
    "vocab": ("Vocab", "UNK", "ENDOFTEXT"),
    "checks": ("check_ids",),
    # IDs -> vectors
    "embed": (
        "init_table",
        "lookup",
        "one_hot_lookup",
        "dense_lookup",
        "embed_module",
        "nnx_embed",
        "attend",
        "checked_lookup",
        "count_params",
    ),
    # vectors + positions -> model input
    "positions": (
        "init_positions",
        "sinusoidal_positions",
        "input_embeddings",
        "sliding_windows",
        "iter_batches",
    ),
    # corpus -> IDs -> training batches
    "corpus": (
        "Corpus",
        "read_corpus",
        "corpus_from_sentences",
        "corpus_from_ids",
        "save_corpus",
        "load_corpus",
    ),
    "data": ("noise_distribution", "skipgram_batches", "cbow_batches", "next_token_batches"),
    # learning the table: the jitted optax step, the device mesh, the run
    "train": ("TrainConfig", "TrainState", "init_state", "train_step", "make_train_step"),
    "mesh": ("make_mesh", "shard_state", "shard_batch"),
    "loop": ("FitConfig", "FitResult", "fit"),
    # using vectors: similarity, analogies, standard benchmarks
    "vectors": (
        "unit_rows",
        "cosine_similarity",
        "similarity_matrix",
        "most_similar",
        "most_similar_cosmul",
        "similar_by_vector",
        "difference_norm",
        "doesnt_match",
        "token_for",
        "trained_rows",
        "words_of_tokens",
        "take_rows",
    ),
    "evaluate": ("evaluate_analogies", "evaluate_word_pairs", "evaluate_suite"),
    # exchange: files, gensim, the Embedding Projector
    "io": ("load_vectors", "from_keyed_vectors"),
    "export": ("save_vectors", "export_projector", "to_keyed_vectors"),
}
_HOME = {name: module for module, names in _API.items() for name in names}

__version__ = "0.1.0"
__all__ = [name for names in _API.values() for name in names]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'jaxembed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"jaxembed.{_HOME[name]}"), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
