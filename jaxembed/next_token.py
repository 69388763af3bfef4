"""The next-token objective's model and loss: the smallest model we found whose token table learns
meaning. Its own module so that word2vec's path never imports flax.linen (~0.3 s)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class NextTokenModel(nn.Module):
    """Token + position vectors -> prefix mean -> Dense, added back -> logits tied to the table.

    h_t = x_t + Dense(mean(x_0 .. x_t)), x = token + position vector; logits = h @ table.T.
    The residual x_t lets bigram statistics through, the prefix mean the topic of the text so
    far; no attention, so the table has to carry the meaning.
    """

    vocab_size: int  # V
    dim: int  # D
    context_length: int  # T, rows of the position table

    @nn.compact
    def __call__(self, ids_BxT: jax.Array) -> jax.Array:
        length = ids_BxT.shape[-1]
        embed = nn.Embed(self.vocab_size, self.dim, name="embed")
        positions = nn.Embed(self.context_length, self.dim, name="pos")
        x_BxTxD = embed(ids_BxT) + positions(jnp.arange(length))[None, :, :]
        count_1xTx1 = jnp.arange(1, length + 1, dtype=x_BxTxD.dtype)[None, :, None]
        prefix_BxTxD = jnp.cumsum(x_BxTxD, axis=1) / count_1xTx1
        h_BxTxD = x_BxTxD + nn.Dense(self.dim, name="mix")(prefix_BxTxD)
        return embed.attend(h_BxTxD)


def next_token_loss(
    params: Any, model: NextTokenModel, batch: Mapping[str, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy of every next token of the real sequences, and their count.

    Example:
      >>> model = NextTokenModel(vocab_size=10, dim=4, context_length=3)
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))
      >>> batch = {"inputs_BxT": jnp.zeros((2, 3), jnp.int32), "targets_BxT": jnp.ones((2, 3), jnp.int32),
      ...          "mask_B": jnp.array([1.0, 0.0])}
      >>> loss_sum, count = next_token_loss(params, model, batch)
      >>> float(count)  # the tokens of the one real sequence
      3.0
    """
    logits_BxTxV = model.apply(params, batch["inputs_BxT"])
    loss_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch["targets_BxT"])
    mask_B = batch["mask_B"]
    return jnp.sum(loss_BxT * mask_B[:, None]), jnp.sum(mask_B) * loss_BxT.shape[1]
