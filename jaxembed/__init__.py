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
from jaxembed.vocab import ENDOFTEXT, UNK, Vocab, check_ids

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
]
