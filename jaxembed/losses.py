"""Loss functions: word2vec's negative sampling (skip-gram, CBOW); next-token prediction's model
and loss are in `jaxembed.next_token` (also reachable from here).

Each is a pure function of gathered rows or parameters; `jaxembed.objectives` builds the steps
from them. `negative_sampling_rows` and `shared_negative_sampling_rows` are the closed-form
gradients of the rows a batch gathers (the sparse step), which the tests check against autodiff
of `negative_sampling_loss`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# ---------------------------------------------------------------------------- word2vec


def negative_sampling_loss(
    v_BxD: jax.Array,
    u_pos_BxD: jax.Array,
    u_neg_GxKxD: jax.Array,
    neg_mask_BxK: jax.Array,
    mask_B: jax.Array,
) -> jax.Array:
    """word2vec's loss, summed over the batch: -log sigma(u_o.v) - sum_k log sigma(-u_k.v).

    Args:
      v_BxD: the input vectors (skip-gram: the context word; CBOW: the context mean).
      u_pos_BxD: output vectors of the words to predict (the centre words).
      u_neg_GxKxD: output vectors of K noise words for each of G groups of B/G consecutive
        pairs (G = B: a draw per pair, as word2vec).
      neg_mask_BxK: 0 for noise words to skip (equal to the centre word), else 1.
      mask_B: 1 for real pairs, 0 for padding.

    Returns:
      The summed loss (float32 scalar).

    Example:
      >>> zeros = jnp.zeros((2, 3))
      >>> negative_sampling_loss(zeros, zeros, jnp.zeros((2, 1, 3)), jnp.ones((2, 1)), jnp.ones(2))
      Array(2.7725887, dtype=float32)

    (2 pairs x 2 terms x log 2.)
    """
    batch, dim = v_BxD.shape
    groups, negative, _ = u_neg_GxKxD.shape
    pos_B = jnp.sum(v_BxD * u_pos_BxD, axis=-1)
    v_GxPxD = v_BxD.reshape(groups, batch // groups, dim)
    neg_BxK = jnp.einsum("gpd,gkd->gpk", v_GxPxD, u_neg_GxKxD).reshape(batch, negative)
    neg_loss_B = jnp.sum(jax.nn.log_sigmoid(-neg_BxK) * neg_mask_BxK, axis=-1)
    return -jnp.sum((jax.nn.log_sigmoid(pos_B) + neg_loss_B) * mask_B)


def pair_weights(center_B: jax.Array, noise_GxK: jax.Array, mask_B: jax.Array) -> jax.Array:
    """weight_BxJ (J = 1 + K): column 0 the positive pair, then the noise words; 0 = skipped.

    A noise word equal to the centre word is skipped (as word2vec.c does), and padding pairs
    weigh nothing.
    """
    groups, negative = noise_GxK.shape
    batch = center_B.shape[0]
    distinct_GxPxK = noise_GxK[:, None, :] != center_B.reshape(groups, batch // groups, 1)
    neg_mask_BxK = distinct_GxPxK.reshape(batch, negative).astype(jnp.float32)
    ones_Bx1 = jnp.ones((batch, 1), jnp.float32)
    return jnp.concatenate([ones_Bx1, neg_mask_BxK], axis=1) * mask_B[:, None]


def _loss_and_slope(s_BxJ: jax.Array, weight_BxJ: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Summed loss and d loss / d score of J scores per pair, column 0 the positive one."""
    label_1xJ = (jnp.arange(s_BxJ.shape[1]) == 0)[None, :]
    loss_sum = jnp.sum(weight_BxJ * jax.nn.softplus(jnp.where(label_1xJ, -s_BxJ, s_BxJ)))
    slope_BxJ = weight_BxJ * (jax.nn.sigmoid(s_BxJ) - label_1xJ.astype(s_BxJ.dtype))
    # Materialise the small (B, J) slope: otherwise XLA recomputes it inside each (B, J, D) loop.
    return loss_sum, jax.lax.optimization_barrier(slope_BxJ)


def negative_sampling_rows(
    v_BxD: jax.Array, u_BxJxD: jax.Array, weight_BxJ: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Loss and gradients of the gathered rows, one draw of noise words per pair (word2vec).

    The closed form of `negative_sampling_loss`'s gradient: with g = d loss / d score,
    grad v = sum_j g_j u_j and grad u_j = g_j v. It saves autodiff's extra passes over the
    (B, J, D) rows, which dominate a CPU step.

    Args:
      v_BxD: input vectors.
      u_BxJxD: output rows of each pair: the centre word, then its K noise words.
      weight_BxJ: from `pair_weights`.

    Returns:
      (summed loss, grad_v_BxD, grad_u_BxJxD).

    Example:
      >>> v_BxD, u_BxJxD = jnp.ones((2, 3)), jnp.zeros((2, 4, 3))
      >>> loss, grad_v, grad_u = negative_sampling_rows(v_BxD, u_BxJxD, jnp.ones((2, 4)))
      >>> grad_v.shape, grad_u.shape, float(loss)  # 2 pairs x 4 scores x log 2
      ((2, 3), (2, 4, 3), 5.545...)
    """
    s_BxJ = jnp.einsum("bd,bjd->bj", v_BxD, u_BxJxD)
    loss_sum, slope_BxJ = _loss_and_slope(s_BxJ, weight_BxJ)
    grad_v_BxD = jnp.einsum("bj,bjd->bd", slope_BxJ, u_BxJxD)
    grad_u_BxJxD = slope_BxJ[:, :, None] * v_BxD[:, None, :]
    return loss_sum, grad_v_BxD, grad_u_BxJxD


def shared_negative_sampling_rows(
    v_BxD: jax.Array, u_pos_BxD: jax.Array, u_neg_GxKxD: jax.Array, weight_BxJ: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """As `negative_sampling_rows`, with G groups of consecutive pairs sharing K noise words.

    Sharing turns the noise-word products into matrix products and reads G * K noise rows
    instead of B * K: faster, but not word2vec's objective (the tests pin it to autodiff).

    Returns:
      (summed loss, grad_v_BxD, grad_u_pos_BxD, grad_u_neg_GxKxD).
    """
    batch, dim = v_BxD.shape
    groups, negative, _ = u_neg_GxKxD.shape
    v_GxPxD = v_BxD.reshape(groups, batch // groups, dim)
    pos_Bx1 = jnp.sum(v_BxD * u_pos_BxD, axis=-1, keepdims=True)
    neg_BxK = jnp.einsum("gpd,gkd->gpk", v_GxPxD, u_neg_GxKxD).reshape(batch, negative)
    loss_sum, slope_BxJ = _loss_and_slope(jnp.concatenate([pos_Bx1, neg_BxK], 1), weight_BxJ)
    slope_GxPxK = slope_BxJ[:, 1:].reshape(groups, batch // groups, negative)
    grad_neg_BxD = jnp.einsum("gpk,gkd->gpd", slope_GxPxK, u_neg_GxKxD).reshape(batch, dim)
    grad_v_BxD = slope_BxJ[:, :1] * u_pos_BxD + grad_neg_BxD
    grad_u_pos_BxD = slope_BxJ[:, :1] * v_BxD
    grad_u_neg_GxKxD = jnp.einsum("gpk,gpd->gkd", slope_GxPxK, v_GxPxD)
    return loss_sum, grad_v_BxD, grad_u_pos_BxD, grad_u_neg_GxKxD


def cbow_mean(context_BxCxD: jax.Array, context_mask_BxC: jax.Array) -> jax.Array:
    """The mean of the real context vectors, with word2vec's gradient: each gets the full error.

    word2vec.c and gensim (cbow_mean=1) average the context vectors forwards but add the whole
    error to each context vector backwards; the true gradient would be 1/C of it. The forward
    value is the mean, the gradient that of the sum.

    Example:
      >>> cbow_mean(jnp.ones((1, 2, 3)), jnp.array([[1.0, 0.0]]))
      Array([[1., 1., 1.]], dtype=float32)
    """
    sum_BxD = jnp.einsum("bcd,bc->bd", context_BxCxD, context_mask_BxC)
    count_Bx1 = jnp.maximum(jnp.sum(context_mask_BxC, axis=-1, keepdims=True), 1.0)
    return sum_BxD + jax.lax.stop_gradient(sum_BxD / count_Bx1 - sum_BxD)


def cbow_mean_flat(
    context_LxD: jax.Array, center_L: jax.Array, mask_L: jax.Array, batch_size: int
) -> jax.Array:
    """`cbow_mean` of flat context rows: slot l belongs to centre center_L[l] (sorted).

    Example:
      >>> cbow_mean_flat(jnp.ones((3, 2)), jnp.array([0, 0, 1]), jnp.array([1.0, 1.0, 0.0]), 2)
      Array([[1., 1.],
             [0., 0.]], dtype=float32)
    """
    sum_BxD = jax.ops.segment_sum(
        context_LxD * mask_L[:, None], center_L, batch_size, indices_are_sorted=True
    )
    count_B = jax.ops.segment_sum(mask_L, center_L, batch_size, indices_are_sorted=True)
    mean_BxD = sum_BxD / jnp.maximum(count_B, 1.0)[:, None]
    return sum_BxD + jax.lax.stop_gradient(mean_BxD - sum_BxD)


def __getattr__(name: str):
    """`NextTokenModel` and `next_token_loss` live in `jaxembed.next_token` (they need flax, ~0.3 s
    to import, which word2vec does without); imported from here on first use."""
    if name in ("NextTokenModel", "next_token_loss"):
        from jaxembed import next_token

        return getattr(next_token, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
