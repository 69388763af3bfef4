"""jaxembed: token embeddings in JAX/Flax.

    text --tokenize--> tokens --Vocab--> token IDs --embedding table--> vectors --> model

The public API, by pipeline step (each name lives in the module named beside it):
"""

# text -> tokens
from jaxembed.tokenize import (
    GPT2_ENDOFTEXT_ID,
    GPT2_N_VOCAB,
    gpt2_encode,
    gpt2_tokenizer,
    join_words,
    split_words,
)

# tokens -> IDs
from jaxembed.vocab import ENDOFTEXT, UNK, Vocab
from jaxembed.checks import check_ids

# IDs -> vectors
from jaxembed.embed import (
    attend,
    checked_lookup,
    count_params,
    dense_lookup,
    embed_module,
    init_table,
    lookup,
    one_hot_lookup,
)

# vectors + positions -> model input
from jaxembed.positions import (
    init_positions,
    input_embeddings,
    iter_batches,
    sinusoidal_positions,
    sliding_windows,
)

# corpus -> IDs -> training batches
from jaxembed.corpus import Corpus, load_corpus, read_corpus, save_corpus
from jaxembed.data import cbow_batches, next_token_batches, noise_distribution, skipgram_batches

# learning the table: the jitted optax step, the device mesh, the run
from jaxembed.train import TrainConfig, TrainState, init_state, make_train_step, train_step
from jaxembed.mesh import make_mesh, shard_batch, shard_state
from jaxembed.loop import FitConfig, fit

# using vectors: similarity, analogies, standard benchmarks
from jaxembed.vectors import (
    cosine_similarity,
    difference_norm,
    doesnt_match,
    most_similar,
    most_similar_cosmul,
    similar_by_vector,
    similarity_matrix,
    unit_rows,
)
from jaxembed.evaluate import evaluate_analogies, evaluate_word_pairs

# exchange: files, gensim, the Embedding Projector
from jaxembed.io import from_keyed_vectors, load_vectors
from jaxembed.export import export_projector, save_vectors, to_keyed_vectors

__version__ = "0.1.0"

__all__ = [
    # text -> tokens
    "split_words",
    "join_words",
    "gpt2_tokenizer",
    "gpt2_encode",
    "GPT2_N_VOCAB",
    "GPT2_ENDOFTEXT_ID",
    # tokens -> IDs
    "Vocab",
    "check_ids",
    "UNK",
    "ENDOFTEXT",
    # IDs -> vectors
    "init_table",
    "lookup",
    "one_hot_lookup",
    "dense_lookup",
    "embed_module",
    "attend",
    "checked_lookup",
    "count_params",
    # vectors + positions -> model input
    "init_positions",
    "sinusoidal_positions",
    "input_embeddings",
    "sliding_windows",
    "iter_batches",
    # corpus -> IDs -> training batches
    "Corpus",
    "read_corpus",
    "save_corpus",
    "load_corpus",
    "noise_distribution",
    "skipgram_batches",
    "cbow_batches",
    "next_token_batches",
    # learning the table
    "TrainConfig",
    "TrainState",
    "init_state",
    "train_step",
    "make_train_step",
    "make_mesh",
    "shard_state",
    "shard_batch",
    "FitConfig",
    "fit",
    # using vectors
    "unit_rows",
    "cosine_similarity",
    "similarity_matrix",
    "most_similar",
    "most_similar_cosmul",
    "similar_by_vector",
    "difference_norm",
    "doesnt_match",
    "evaluate_analogies",
    "evaluate_word_pairs",
    # exchange
    "load_vectors",
    "save_vectors",
    "export_projector",
    "to_keyed_vectors",
    "from_keyed_vectors",
]
