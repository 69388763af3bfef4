"""Training objectives, one record each: batches, parameters, step body and defaults.

An `Objective` (looked up by name with `get`) holds everything that differs between objectives,
in the spirit of optax's `GradientTransformation(init, update)`: `jaxembed.train` and
`jaxembed.loop` ask the record and never compare names. Adding an objective means writing its
functions and its record here.

- Skip-gram: the input table ("embed") holds the context word's vector ``v``; the output table
  ("out") scores the centre word ``u_o`` against K noise words ``u_k``:
  ``-log sigma(u_o . v) - sum_k log sigma(-u_k . v)``, oriented as word2vec.c and gensim do.
  Noise words equal to the centre word are skipped, as there.
- CBOW: the same score with ``v`` the mean of the context vectors (gensim's cbow_mean=1); like
  word2vec, every context vector receives the whole error of the mean (`cbow_mean`).
- Next-token: `NextTokenModel`, the smallest model we found whose token table learns meaning
  (see its docstring); its logits are tied to the token table through ``nn.Embed.attend``.

The word2vec step is either autodiff of the loss over the whole tables (dense) or the closed-form
gradients of the rows a batch gathered, applied by `jaxembed.rows.sparse_update` (sparse); the
tests pin one to the other. Noise words: by default ``share_negatives`` = G consecutive pairs
share one draw of K noise words (Ji et al. 2016, "Parallelizing Word2Vec in Shared and
Distributed Memory"): each pair still scores K words drawn from word2vec's unigram^0.75
distribution, so the expected gradient is unchanged; noise rows are read G-fold less often and
their products become matrix products. ``share_negatives=1`` is word2vec.c's draw per pair. A
shared noise row gets the summed gradient of G pairs at once, which can diverge at learning
rates far above word2vec's (BENCHMARKS.md has the measurements).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxembed import data
from jaxembed.checks import one_of
from jaxembed.losses import (
    NextTokenModel,
    cbow_mean,
    cbow_mean_flat,
    negative_sampling_loss,
    negative_sampling_rows,
    next_token_loss,
    pair_weights,
    shared_negative_sampling_rows,
)
from jaxembed.rows import sample_noise, sparse_update

# ---------------------------------------------------------------------------- word2vec steps


def noise_groups(config: Any, batch_size: int) -> int:
    """G: groups of `share_negatives` consecutive pairs, the last one shorter if need be."""
    return -(-batch_size // config.share_negatives)


def draw_noise(
    config: Any,
    state: Any,
    alias: tuple[jax.Array, jax.Array],
    batch_size: int,
    steps: int | None = None,
) -> jax.Array:
    """The noise word IDs of the step `state.step` (or of `steps` steps from it), shape (G, K).

    Step i draws from fold_in(key, i), so the IDs do not depend on how steps are grouped.
    Drawing many steps' IDs at once costs one random-number loop instead of one per step.

    Args:
      config: the TrainConfig (negative, share_negatives).
      state: the TrainState (key, step).
      alias: `jaxembed.rows.alias_tables` of the noise distribution.
      batch_size: B, pairs per step.
      steps: draw for this many steps from state.step (leading axis); None: this step only.
    """
    key = jax.random.wrap_key_data(state.key)
    shape = (noise_groups(config, batch_size), config.negative)
    if steps is None:
        return sample_noise(jax.random.fold_in(key, state.step), *alias, shape)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, state.step + i))(jnp.arange(steps))
    return jax.vmap(lambda k: sample_noise(k, *alias, shape))(keys)


def _pad_to_groups(config, batch: Mapping[str, jax.Array]) -> dict:
    """Pads a batch whose size is not a multiple of share_negatives with pairs that weigh 0.

    The padding repeats the last pair's IDs, so it touches no row the batch did not already
    touch (lazy Adam merges it into that row, with a zero gradient).
    """
    batch_size = batch["center_B"].shape[0]
    pad = noise_groups(config, batch_size) * config.share_negatives - batch_size
    if pad == 0:
        return dict(batch)

    def padded(name, x):
        if not name.endswith(("_B", "_BxC")):
            return x
        widths = ((0, pad),) + ((0, 0),) * (x.ndim - 1)
        return jnp.pad(x, widths, mode="constant" if "mask" in name else "edge")

    return {name: padded(name, x) for name, x in batch.items()}


def _skipgram_context(embed_VxD, batch):
    """Skip-gram's input: the context word's row; its gradient goes to that row.

    Returns (input row IDs, v_BxD, grad_v -> the input rows' gradients, the pairs each carries).
    """
    ids_B = batch["context_B"]
    v_BxD = embed_VxD.at[ids_B].get(mode="promise_in_bounds")
    return ids_B, v_BxD, lambda grad_v_BxD: grad_v_BxD, batch["mask_B"]


def _cbow_context(embed_VxD, batch):
    """CBOW's input: the mean of the context rows; each context row gets the whole error.

    Batches come flat (`jaxembed.data.cbow_slots`: "context_L" with "slot_center_L"), as
    `jaxembed.data.cbow_batches` makes them, or padded ("context_BxC", "context_mask_BxC"); the
    two give the same loss and updates (tests/test_train.py), the flat one from fewer rows.
    """
    if "context_L" not in batch:
        ids_BxC, mask_BxC = batch["context_BxC"], batch["context_mask_BxC"]
        v_BxD = cbow_mean(embed_VxD.at[ids_BxC].get(mode="promise_in_bounds"), mask_BxC)

        def spread_padded(grad_v_BxD):
            return mask_BxC[:, :, None] * grad_v_BxD[:, None, :]

        return ids_BxC, v_BxD, spread_padded, mask_BxC
    ids_L, center_L, mask_L = batch["context_L"], batch["slot_center_L"], batch["slot_mask_L"]
    rows_LxD = embed_VxD.at[ids_L].get(mode="promise_in_bounds")
    v_BxD = cbow_mean_flat(rows_LxD, center_L, mask_L, batch["center_B"].shape[0])

    def spread(grad_v_BxD):
        return mask_L[:, None] * grad_v_BxD.at[center_L].get(mode="promise_in_bounds")

    return ids_L, v_BxD, spread, mask_L


ROW_SCALES = ("none", "count", "sqrt", "cap", "implicit", "implicit-bound")


def _row_scales(config, rows, ids, weights, curvatures=None, lr=None):
    """Per-occurrence factors of `TrainConfig.row_scale`: a row's summed gradient is divided by
    its number of contributions c in the batch ("count": their mean), by sqrt(c) ("sqrt"), by
    c / row_cap where c exceeds `TrainConfig.row_cap` ("cap": at most row_cap pairs' worth), or
    by 1 + lr * h ("implicit"), h the summed curvature of its contributions (`_curvatures`).

    Args:
      ids, weights: tuples of pieces: the IDs a table's gradient rows belong to, and how many
        pair gradients each occurrence carries (0 for padding).
      curvatures, lr: "implicit": each occurrence's curvature (pieces as `ids`), and the step's
        learning rate.

    Returns:
      A tuple of (N,) factors matching `ids`, or None for "none" (plain summed SGD).
    """
    if config.row_scale == "none":
        return None
    implicit = config.row_scale.startswith("implicit")
    count_V = jnp.zeros(rows, jnp.float32)
    for ids_N, weight_N in zip(ids, curvatures if implicit else weights, strict=True):
        count_V = count_V.at[ids_N].add(weight_N, mode="promise_in_bounds")
    if implicit:
        scale_V = 1.0 / (1.0 + lr * count_V)
    else:
        count_V = jnp.maximum(count_V, 1.0)
    if config.row_scale == "count":
        scale_V = 1.0 / count_V
    elif config.row_scale == "sqrt":
        scale_V = jax.lax.rsqrt(count_V)
    elif config.row_scale == "cap":
        scale_V = jnp.minimum(1.0, config.row_cap / count_V)
    return tuple(scale_V.at[ids_N].get(mode="promise_in_bounds") for ids_N in ids)


def _curvatures(config, v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ):
    """Each pair's curvature along the rows it updates, for `row_scale="implicit"`.

    The loss of one score s = u . v is softplus(-+s); its second derivative along v is
    sigma'(s) |u|^2 (the trace of the Gauss-Newton matrix sigma'(s) u u^T), and along u it is
    sigma'(s) |v|^2. Summed over a row's contributions, h bounds how fast the row's batch loss
    bends, and u - lr * g / (1 + lr * h) is the diagonal form of the implicit (proximal) step
    u' = u - lr * g(u'): plain SGD for a row touched by few pairs, a damped Newton step for a
    row that thousands of pairs in one batch all push the same way (where the plain sum
    overshoots and diverges). "implicit-bound" uses sigma' <= 1/4 instead: never undamped where
    the scores saturate.

    Returns:
      (h_in_B: the input vector's, h_pos_B: the centre row's, h_neg_GxK: each shared noise
      row's, summed over the pairs of its group); recomputing the scores here costs nothing
      extra after XLA's common-subexpression elimination.
    """
    batch, dim = v_BxD.shape
    groups, negative, _ = u_neg_GxKxD.shape
    v_GxPxD = v_BxD.reshape(groups, batch // groups, dim)
    pos_B = jnp.sum(v_BxD * u_pos_BxD, axis=-1)
    neg_GxPxK = jnp.einsum("gpd,gkd->gpk", v_GxPxD, u_neg_GxKxD)
    s_BxJ = jnp.concatenate([pos_B[:, None], neg_GxPxK.reshape(batch, negative)], axis=1)
    if config.row_scale == "implicit-bound":
        bend_BxJ = 0.25 * weight_BxJ
    else:
        sigma_BxJ = jax.nn.sigmoid(s_BxJ)
        bend_BxJ = weight_BxJ * sigma_BxJ * (1.0 - sigma_BxJ)
    v_sq_B = jnp.sum(v_BxD * v_BxD, axis=-1)
    u_neg_sq_GxK = jnp.sum(u_neg_GxKxD * u_neg_GxKxD, axis=-1)
    bend_neg_GxPxK = bend_BxJ[:, 1:].reshape(groups, batch // groups, negative)
    h_in_B = bend_BxJ[:, 0] * jnp.sum(u_pos_BxD * u_pos_BxD, axis=-1) + jnp.einsum(
        "gpk,gk->gp", bend_neg_GxPxK, u_neg_sq_GxK
    ).reshape(batch)
    h_pos_B = bend_BxJ[:, 0] * v_sq_B
    h_neg_GxK = jnp.einsum("gpk,gp->gk", bend_neg_GxPxK, v_sq_B.reshape(groups, -1))
    return h_in_B, h_pos_B, h_neg_GxK


def _scaled(grads, scales):
    if scales is None:
        return grads
    return tuple(g * s[:, None] for g, s in zip(grads, scales, strict=True))


def _word2vec_sparse(context, config, tx, params, opt_state, batch, noise_GxK, weight_BxJ, lr):
    """Gather the rows, closed-form row gradients, optax on those rows, scatter back."""
    embed, out = params["embed"], params["out"]
    center_B, dim = batch["center_B"], embed.shape[1]
    in_ids, v_BxD, spread, in_weights = context(embed, batch)
    if config.share_negatives == 1:
        out_ids_BxJ = jnp.concatenate([center_B[:, None], noise_GxK], axis=1)
        # Materialise the IDs: fused into the gather, they would be recomputed for every float.
        out_ids_BxJ = jax.lax.optimization_barrier(out_ids_BxJ)
        u_BxJxD = out.at[out_ids_BxJ].get(mode="promise_in_bounds")
        loss_sum, grad_v_BxD, grad_u_BxJxD = negative_sampling_rows(v_BxD, u_BxJxD, weight_BxJ)
        out_ids, grad_u = (out_ids_BxJ.reshape(-1),), (grad_u_BxJxD.reshape(-1, dim),)
        out_weights = ((weight_BxJ > 0).astype(jnp.float32).reshape(-1),)
        u_pos_BxD, u_neg_GxKxD = u_BxJxD[:, 0], u_BxJxD[:, 1:]
    else:
        u_pos_BxD = out.at[center_B].get(mode="promise_in_bounds")
        u_neg_GxKxD = out.at[noise_GxK].get(mode="promise_in_bounds")
        loss_sum, grad_v_BxD, grad_pos, grad_neg = shared_negative_sampling_rows(
            v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ
        )
        out_ids = (center_B, noise_GxK.reshape(-1))
        grad_u = (grad_pos, grad_neg.reshape(-1, dim))
        # A shared noise row carries the gradients of the pairs of its group that score it.
        groups, negative = noise_GxK.shape
        scored_GxK = (weight_BxJ[:, 1:] > 0).reshape(groups, -1, negative).sum(axis=1)
        out_weights = (batch["mask_B"], scored_GxK.astype(jnp.float32).reshape(-1))
    grad_in = spread(grad_v_BxD).reshape(-1, dim)
    in_ids = (in_ids.reshape(-1),)
    in_weights = (in_weights.reshape(-1),)
    in_curv = out_curv = None
    if config.row_scale.startswith("implicit"):
        h_in_B, h_pos_B, h_neg_GxK = _curvatures(config, v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ)
        in_curv = (spread(h_in_B[:, None]).reshape(-1),)
        if config.share_negatives == 1:
            out_curv = (jnp.concatenate([h_pos_B[:, None], h_neg_GxK], axis=1).reshape(-1),)
        else:
            out_curv = (h_pos_B, h_neg_GxK.reshape(-1))
    rows = embed.shape[0]
    grad_in = _scaled((grad_in,), _row_scales(config, rows, in_ids, in_weights, in_curv, lr))
    grad_u = _scaled(grad_u, _row_scales(config, rows, out_ids, out_weights, out_curv, lr))
    embed, opt_embed = sparse_update(tx, embed, opt_state["embed"], in_ids, grad_in)
    out, opt_out = sparse_update(tx, out, opt_state["out"], out_ids, grad_u)
    return loss_sum, {"embed": embed, "out": out}, {"embed": opt_embed, "out": opt_out}


def _word2vec_dense(context, config, tx, params, opt_state, batch, noise_GxK, weight_BxJ, lr):
    """Autodiff of the loss with respect to the whole tables, optax on the whole tables."""

    def loss(params):
        _, v_BxD, _, _ = context(params["embed"], batch)
        u_pos_BxD, u_neg_GxKxD = params["out"][batch["center_B"]], params["out"][noise_GxK]
        mask_B = batch["mask_B"]
        return negative_sampling_loss(v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ[:, 1:], mask_B)

    loss_sum, grads = jax.value_and_grad(loss)(params)
    new_params, new_opt_state = {}, {}
    for name in ("embed", "out"):
        updates, new_opt_state[name] = tx.update(grads[name], opt_state[name], params[name])
        new_params[name] = optax.apply_updates(params[name], updates)
    return loss_sum, new_params, new_opt_state


def _word2vec_update(context, config, tx, state, batch, alias, lr):
    """word2vec's step body: noise words, pair weights, then the sparse or dense update."""
    count = jnp.sum(batch["mask_B"])
    batch = _pad_to_groups(config, batch)
    noise_GxK = batch.get("noise_GxK")
    if noise_GxK is None:
        noise_GxK = draw_noise(config, state, alias, batch["center_B"].shape[0])
    weight_BxJ = pair_weights(batch["center_B"], noise_GxK, batch["mask_B"])
    update = _word2vec_sparse if config.sparse else _word2vec_dense
    loss_sum, params, opt_state = update(
        context, config, tx, state.params, state.opt_state, batch, noise_GxK, weight_BxJ, lr
    )
    return loss_sum, count, params, opt_state


def _word2vec_init(key, config, rows):
    """word2vec's tables: input rows uniform in +-0.5/D (word2vec.c, gensim), output rows 0."""
    return _word2vec_tables(key, rows, config.dim), ("['embed']", "['out']")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _word2vec_tables(key, rows: int, dim: int) -> dict:
    # Jitted: the random bits, their conversion and scaling fuse into the one output buffer (run
    # op by op, each made its own V x D temporary: 150 MB more peak memory at 61k x 200).
    bound = 0.5 / dim
    embed = jax.random.uniform(key, (rows, dim), jnp.float32, -bound, bound)
    return {"embed": embed, "out": jnp.zeros((rows, dim), jnp.float32)}


def _skipgram_batches(corpus, train, fit, epoch, start_batch):
    common = dict(seed=train.seed, epoch=epoch, epochs=fit.epochs, start_batch=start_batch)
    return data.skipgram_batches(corpus, fit.window, fit.sample, fit.batch_size, **common)


def _cbow_batches(corpus, train, fit, epoch, start_batch):
    common = dict(seed=train.seed, epoch=epoch, epochs=fit.epochs, start_batch=start_batch)
    return data.cbow_batches(corpus, fit.window, fit.sample, fit.batch_size, **common)


# ---------------------------------------------------------------------------- next-token step


def _next_token_init(key, config, rows):
    model = NextTokenModel(rows, config.dim, config.context_length)
    params = model.init(key, jnp.zeros((1, config.context_length), jnp.int32))
    return params, ("['params']['embed']['embedding']",)


def _next_token_update(config, tx, state, batch, alias, lr):
    """Autodiff of the summed cross-entropy, optax on every parameter."""
    rows = state.params["params"]["embed"]["embedding"].shape[0]
    model = NextTokenModel(rows, config.dim, config.context_length)
    (loss_sum, count), grads = jax.value_and_grad(next_token_loss, has_aux=True)(
        state.params, model, batch
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return loss_sum, count, optax.apply_updates(state.params, updates), opt_state


def _next_token_batches(corpus, train, fit, epoch, start_batch):
    common = dict(seed=train.seed, epoch=epoch, epochs=fit.epochs, start_batch=start_batch)
    return data.next_token_batches(
        corpus, train.context_length, fit.batch_size, stride=fit.stride, **common
    )


# ---------------------------------------------------------------------------- the records


class Objective(NamedTuple):
    """What makes an objective, as functions and defaults; `jaxembed.train` runs any of them."""

    name: str
    batch_keys: tuple[str, ...]  # arrays of a batch the step reads (the rest stays on the host)
    # (corpus, TrainConfig, FitConfig, epoch, start_batch) -> one epoch's batches
    batches: Callable[..., Iterator[dict]]
    # (key, TrainConfig, rows) -> (params, paths of the vocabulary tables in them, input first)
    init: Callable[..., tuple[Any, tuple[str, ...]]]
    # (TrainConfig, tx, state, batch, alias tables, learning rate)
    #   -> (loss_sum, count, params, opt_state)
    update: Callable[..., tuple[jax.Array, jax.Array, Any, Any]]
    negatives: bool  # draws noise words: needs noise weights (make_train_step's noise_probs_V)
    sparse: bool  # can update only the rows a batch touches (TrainConfig.update)
    optimizer: str  # default optimiser, learning rates and batch size (examples per step)
    lr: float
    min_lr: float
    batch_size: int
    # arrays of another layout the step also takes (CBOW: padded contexts, as device batches)
    other_keys: tuple[str, ...] = ()
    cpu_steps_per_call: int = 16  # FitConfig.steps_per_call's default on a CPU


_WORD2VEC = dict(negatives=True, sparse=True, optimizer="sgd", min_lr=0.0001)
SKIPGRAM = Objective(
    "skipgram",
    ("center_B", "context_B", "mask_B", "progress"),
    _skipgram_batches,
    _word2vec_init,
    functools.partial(_word2vec_update, _skipgram_context),
    lr=0.025,  # word2vec.c's and gensim's
    batch_size=4096,
    **_WORD2VEC,
)
CBOW = Objective(
    "cbow",
    ("center_B", "context_L", "slot_center_L", "slot_mask_L", "mask_B", "progress"),
    _cbow_batches,
    _word2vec_init,
    functools.partial(_word2vec_update, _cbow_context),
    # word2vec.c's and fastText's CBOW rate (gensim uses 0.025 for both objectives). On
    # corpus-en-11m (D=200, 5 epochs) 0.05 scored 25.5% analogies / 0.682 WordSim-353 against
    # 18.1% / 0.560 with 0.025 (BENCHMARKS.md, section 2).
    lr=0.05,
    batch_size=512,
    other_keys=("context_BxC", "context_mask_BxC"),
    # Its steps are small: 64 a call ran 1.13-1.16x the words/s of 16, the same table (skip-gram:
    # 0.76-0.89x; BENCHMARKS.md, section 2).
    cpu_steps_per_call=64,
    **_WORD2VEC,
)
NEXT_TOKEN = Objective(
    "next-token",
    ("inputs_BxT", "targets_BxT", "mask_B", "progress"),
    _next_token_batches,
    _next_token_init,
    _next_token_update,
    negatives=False,
    sparse=False,
    optimizer="adam",
    lr=0.003,
    min_lr=0.0003,
    batch_size=32,
)
OBJECTIVES = {o.name: o for o in (SKIPGRAM, CBOW, NEXT_TOKEN)}


def get(name: str) -> Objective:
    """The record of the objective `name` ("skipgram", "cbow" or "next-token").

    Example:
      >>> get("cbow").batch_size
      512
    """
    return OBJECTIVES[one_of("objective", name, tuple(OBJECTIVES))]
