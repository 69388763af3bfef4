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
- Next-token: `jaxembed.next_token.NextTokenModel`, the smallest model we found whose token
  table learns meaning (see its docstring); its logits are tied to the token table through
  ``nn.Embed.attend``.

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
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxembed import data
from jaxembed.checks import one_of
from jaxembed.losses import (
    cbow_mean,
    cbow_mean_flat,
    negative_sampling_loss,
    negative_sampling_rows,
    pair_weights,
    shared_negative_sampling_rows,
)
from jaxembed.rows import sample_noise, sparse_update, stochastic_round

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


# fold_in tag of the bfloat16 rounding keys: apart from the noise draws' fold_in(key, step)
_ROUNDING = 0x726F756E


def rounding_key(config: Any, state: Any) -> jax.Array | None:
    """The key the step `state.step` rounds its bfloat16 tables with (`TrainConfig.table_dtype`;
    `jaxembed.rows.stochastic_round`); None for float32 tables. Like the noise draws, it depends
    on the step's number alone, so a resumed run rounds as an uninterrupted one."""
    if config.table_dtype == "float32":
        return None
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), _ROUNDING)
    return jax.random.fold_in(key, state.step)


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


def _rows(table_VxD, ids):
    """The table's rows `ids`, as float32 (a bfloat16 table's rows are computed with in float32:
    `TrainConfig.table_dtype`)."""
    return table_VxD.at[ids].get(mode="promise_in_bounds").astype(jnp.float32)


def _skipgram_context(embed_VxD, batch):
    """Skip-gram's input: the context word's row; its gradient goes to that row.

    Returns (input row IDs, v_BxD, grad_v -> the input rows' gradients, the pairs each carries,
    the pair of each input row: None where input row b is pair b's).
    """
    ids_B = batch["context_B"]
    v_BxD = _rows(embed_VxD, ids_B)
    return ids_B, v_BxD, lambda grad_v_BxD: grad_v_BxD, batch["mask_B"], None


def _cbow_context(embed_VxD, batch):
    """CBOW's input: the mean of the context rows; each context row gets the whole error.

    Batches come flat (`jaxembed.data.cbow_slots`: "context_L" with "slot_center_L"), as
    `jaxembed.data.cbow_batches` makes them, or padded ("context_BxC", "context_mask_BxC"); the
    two give the same loss and updates (tests/test_train.py), the flat one from fewer rows.
    """
    if "context_L" not in batch:
        ids_BxC, mask_BxC = batch["context_BxC"], batch["context_mask_BxC"]
        v_BxD = cbow_mean(_rows(embed_VxD, ids_BxC), mask_BxC)

        def spread_padded(grad_v_BxD):
            return mask_BxC[:, :, None] * grad_v_BxD[:, None, :]

        pairs_BxC = jnp.broadcast_to(jnp.arange(ids_BxC.shape[0])[:, None], ids_BxC.shape)
        return ids_BxC, v_BxD, spread_padded, mask_BxC, pairs_BxC
    ids_L, center_L, mask_L = batch["context_L"], batch["slot_center_L"], batch["slot_mask_L"]
    rows_LxD = _rows(embed_VxD, ids_L)
    v_BxD = cbow_mean_flat(rows_LxD, center_L, mask_L, batch["center_B"].shape[0])

    def spread(grad_v_BxD):
        return mask_L[:, None] * grad_v_BxD.at[center_L].get(mode="promise_in_bounds")

    return ids_L, v_BxD, spread, mask_L, center_L


ROW_SCALES = ("auto", "none", "count", "sqrt", "cap", "newton", "sequential", "joint", "implicit")
# The row_scale rules that size SGD steps by the curvature of the step's loss.
CURVATURE_RULES = ("newton", "sequential", "joint", "implicit")


def row_scale(config: Any, batch_size: int) -> str:
    """The rule a step of `batch_size` examples runs for `TrainConfig.row_scale`.

    "auto" is plain summed SGD ("none") up to the objective's default batch size (4,096 skip-gram
    pairs, 512 CBOW centres), where it was validated against gensim, and "newton" above it, where
    plain SGD diverges (BENCHMARKS.md, section 7). A step that does not update rows one by one
    (dense, next-token) or does not run SGD runs "none". The step asks this at trace time, from
    its static batch size, so at the default sizes it compiles exactly the plain step.

    Example:
      >>> from jaxembed.train import TrainConfig
      >>> row_scale(TrainConfig(), 4096), row_scale(TrainConfig(), 65536)
      ('none', 'newton')
    """
    if config.row_scale != "auto":
        return config.row_scale
    if not config.sparse or config.optimizer != "sgd":
        return "none"
    return "none" if batch_size <= get(config.objective).batch_size else "newton"


def row_passes(config: Any, batch_size: int) -> int:
    """The passes over its batch a step of `batch_size` examples makes (`TrainConfig.row_passes`).

    Only newton and implicit make more than one. None (the default) is, for newton, one pass up
    to the objective's `two_passes_above` batch size, two above it and, where newton resolves
    one direction of a row's curvature (`row_directions`), four above its `four_passes_above`:
    at 262,144 skip-gram pairs one newton pass a step was 1.7 analogy points short of the CPU's
    batch (mean of two seeds), two passes were 0.2 points short; at 1,048,576 (bounded, one
    direction, one seed) two were 3.7 short, four 1.5 (BENCHMARKS.md, section 7). Where newton
    resolves two directions, the objective's `two_directions_passes` if it sets one (CBOW: one
    pass). implicit: one.

    Example:
      >>> from jaxembed.train import TrainConfig
      >>> [row_passes(TrainConfig(), b) for b in (4096, 131072, 262144, 1048576)]
      [1, 1, 2, 2]
      >>> row_passes(TrainConfig(row_directions=1), 1048576)
      4
      >>> [row_passes(TrainConfig(objective="cbow"), b) for b in (512, 65536, 131072)]
      [1, 2, 1]
    """
    rule = row_scale(config, batch_size)
    if rule not in ("newton", "implicit"):
        return 1
    if config.row_passes is not None:
        return config.row_passes
    if rule == "implicit":
        return 1
    objective = get(config.objective)
    directions = row_directions(config, batch_size)
    if directions > 1 and objective.two_directions_passes is not None:
        return objective.two_directions_passes
    four = objective.four_passes_above
    if four is not None and batch_size > four and directions == 1:
        return 4
    above = objective.two_passes_above
    return 1 if above is None or batch_size <= above else 2


def row_directions(config: Any, batch_size: int) -> int:
    """The directions of each row's curvature a step of `batch_size` examples resolves
    (`TrainConfig.row_directions`; `_krylov_steps`).

    An explicit value is kept. None (the default) is 1, except under row_scale="auto" above the
    objective's `two_directions_above`, where auto's newton step resolves two: at 524,288 and
    1,048,576 skip-gram pairs newton along the gradient alone (bounded, two and four passes)
    scored 1.4 and 2.6 analogy points short of the CPU's batch, in two directions (two passes)
    0.5 points above it and 0.7 short (1M: mean of two seeds; BENCHMARKS.md, section 7).

    Example:
      >>> from jaxembed.train import TrainConfig
      >>> [row_directions(TrainConfig(), b) for b in (4096, 262144, 524288)]
      [1, 1, 2]
    """
    if config.row_directions is not None:
        return config.row_directions
    above = get(config.objective).two_directions_above
    if config.row_scale != "auto" or above is None or batch_size <= above:
        return 1
    return 2 if row_scale(config, batch_size) == "newton" else 1


def row_step_max(config: Any, batch_size: int) -> float | None:
    """How far a row may move in a step of `batch_size` examples (`TrainConfig.row_step_max`).

    An explicit value is kept. None (the default) is no limit, except under row_scale="auto"
    above the objective's `bound_steps_above`, where auto's newton step takes 1.0: at 524,288
    skip-gram pairs it diverged in its first call without it; with it, 524,288 and 1,048,576
    pairs train stably (BENCHMARKS.md, section 7).

    Example:
      >>> from jaxembed.train import TrainConfig
      >>> [row_step_max(TrainConfig(), b) for b in (4096, 262144, 524288)]
      [None, None, 1.0]
    """
    if config.row_step_max is not None or config.row_scale != "auto":
        return config.row_step_max
    above = get(config.objective).bound_steps_above
    if row_scale(config, batch_size) not in CURVATURE_RULES or above is None:
        return None
    return None if batch_size <= above else 1.0


def row_balance(config: Any, batch_size: int) -> bool:
    """Whether a step of `batch_size` examples rebalances its tables as its small steps would
    (`TrainConfig.row_balance`; `_rebalance`).

    An explicit value is kept. None (the default) is off, except under row_scale="auto" above
    the objective's `balance_above`, where auto's curvature step is followed by the rebalance
    (BENCHMARKS.md, section 7).

    Example:
      >>> from jaxembed.train import TrainConfig
      >>> [row_balance(TrainConfig(), b) for b in (4096, 262144, 524288)]
      [False, False, True]
    """
    if config.row_balance is not None:
        return config.row_balance
    above = get(config.objective).balance_above
    if config.row_scale != "auto" or above is None or batch_size <= above:
        return False
    return row_scale(config, batch_size) in CURVATURE_RULES


def row_step(config: Any, batch_size: int) -> dict:
    """What a step of `batch_size` examples takes for each of `TrainConfig`'s row settings, with
    "auto" and None resolved: {"row_scale", "row_passes", "row_step_max", "row_directions",
    "row_balance"}.

    Example:
      >>> from jaxembed.train import TrainConfig
      >>> row_step(TrainConfig(), 524288)  # doctest: +NORMALIZE_WHITESPACE
      {'row_scale': 'newton', 'row_passes': 2, 'row_step_max': 1.0, 'row_directions': 2,
       'row_balance': True}
    """
    return {
        "row_scale": row_scale(config, batch_size),
        "row_passes": row_passes(config, batch_size),
        "row_step_max": row_step_max(config, batch_size),
        "row_directions": row_directions(config, batch_size),
        "row_balance": row_balance(config, batch_size),
    }


def _row_scales(rule, slots: _Slots, weights):
    """Per-occurrence factors of the counting rules of `TrainConfig.row_scale`: a row's summed
    gradient is divided by its number of contributions c in the batch ("count": their mean), by
    sqrt(c) ("sqrt"), or by c / row_cap where c exceeds `TrainConfig.row_cap` ("cap": at most
    row_cap pairs' worth).

    Args:
      rule: ("count" | "sqrt" | "cap", row_cap).
      slots: `_slots` of the table's gradient rows.
      weights: how many pair gradients each occurrence carries (0 for padding), in pieces.

    Returns:
      A tuple of (N,) factors matching the gradient's pieces.
    """
    name, row_cap = rule
    count_S = jnp.maximum(slots.sum(jnp.concatenate(weights)), 1.0)
    if name == "count":
        scale_S = 1.0 / count_S
    elif name == "sqrt":
        scale_S = jax.lax.rsqrt(count_S)
    else:
        scale_S = jnp.minimum(1.0, row_cap / count_S)
    return slots.spread(scale_S)


class _Pairs(NamedTuple):
    """What the curvature rules need of a batch's pairs (`_curvature_scales`)."""

    v_BxD: jax.Array  # each pair's input vector
    u_pos_BxD: jax.Array  # its centre word's output row
    u_neg_GxKxD: jax.Array  # the noise rows of each group of pairs (G = B with one draw a pair)
    # weight * sigmoid'(score) of the centre (j = 0) and each noise word, as the input row's
    # and as the output row's curvature ("joint": each times its share, `_joint_bends`)
    in_bend_BxJ: jax.Array
    out_bend_BxJ: jax.Array


def _bends(v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ):
    """weight * sigmoid'(s) of every score s of the batch: each score's loss softplus(-+s) bends
    by sigmoid'(s) = sigma(s) (1 - sigma(s)) along s."""
    batch, dim = v_BxD.shape
    groups, negative, _ = u_neg_GxKxD.shape
    pos_B = jnp.sum(v_BxD * u_pos_BxD, axis=-1)
    neg_GxPxK = jnp.einsum("gpd,gkd->gpk", v_BxD.reshape(groups, -1, dim), u_neg_GxKxD)
    s_BxJ = jnp.concatenate([pos_B[:, None], neg_GxPxK.reshape(batch, negative)], axis=1)
    sigma_BxJ = jax.nn.sigmoid(s_BxJ)
    return weight_BxJ * sigma_BxJ * (1.0 - sigma_BxJ)


def _joint_bends(v_BxD, u_pos_BxD, u_neg_GxKxD, bend_BxJ):
    """The bends of rule "joint": both rows of a score s = u . v move in the same step, so where
    each took its own Newton step, s would move twice as far as the minimum of its loss. The
    step of least norm that moves s to it splits the move between them as |u|^2 : |v|^2, which
    is each row's own Newton step with the bend times (|u|^2 + |v|^2) / |x|^2, x the other row.

    Returns:
      (the input rows' bends, the output rows' bends), B x J.
    """
    batch = v_BxD.shape[0]
    groups, negative, _ = u_neg_GxKxD.shape
    v_sq_Bx1 = jnp.sum(v_BxD * v_BxD, axis=-1)[:, None]
    u_neg_sq_GxPxK = jnp.broadcast_to(
        jnp.sum(u_neg_GxKxD * u_neg_GxKxD, axis=-1)[:, None, :],
        (groups, batch // groups, negative),
    )
    u_sq_BxJ = jnp.concatenate(
        [jnp.sum(u_pos_BxD * u_pos_BxD, axis=-1)[:, None], u_neg_sq_GxPxK.reshape(batch, -1)],
        axis=1,
    )
    total_BxJ = u_sq_BxJ + v_sq_Bx1

    def share(of):  # total / of where of > 0: a zero row's own term is zero anyway
        return jnp.where(of > 0, total_BxJ / jnp.where(of > 0, of, 1.0), 1.0)

    return bend_BxJ * share(u_sq_BxJ), bend_BxJ * share(jnp.broadcast_to(v_sq_Bx1, u_sq_BxJ.shape))


class _Slots(NamedTuple):
    """Where each occurrence of a table's gradient rows is summed in a step: the rows themselves
    (V slots) where the step has at least as many occurrences as the table has rows, else one
    slot per occurrence (sorted IDs), so that a large vocabulary costs nothing extra."""

    slot_N: jax.Array  # each occurrence's slot (the pieces of the gradient, concatenated)
    slots: int
    sizes: tuple[int, ...]  # the pieces' lengths
    rows_S: jax.Array  # each slot's row of the table (slots past the distinct rows: row 0)

    def sum(self, x_N: jax.Array) -> jax.Array:
        """x summed over each slot's occurrences (slots past the distinct rows: 0)."""
        return jax.ops.segment_sum(x_N, self.slot_N, num_segments=self.slots)

    def spread(self, x_S: jax.Array) -> tuple[jax.Array, ...]:
        """Each occurrence's slot value, in the gradient's pieces."""
        x_N = x_S.at[self.slot_N].get(mode="promise_in_bounds")
        return tuple(jnp.split(x_N, list(itertools.accumulate(self.sizes))[:-1]))


def _slots(rows: int, ids) -> _Slots:
    ids_N = jnp.concatenate(ids)
    n = ids_N.shape[0]
    sizes = tuple(i.shape[0] for i in ids)
    if rows <= n:  # V slots are the cheaper (no sort)
        return _Slots(ids_N, rows, sizes, jnp.arange(rows, dtype=ids_N.dtype))
    rows_S, slot_N = jnp.unique(ids_N, size=n, fill_value=0, return_inverse=True)
    return _Slots(slot_N.reshape(n), n, sizes, rows_S)


def _pair_partners(p: _Pairs, pairs_N):
    """The centre row, noise rows and bends of each input occurrence's pair (`pairs_N` its pair),
    gathered: N x D, N x K x D, N x J."""
    batch, groups = p.v_BxD.shape[0], p.u_neg_GxKxD.shape[0]
    u_pos_NxD = p.u_pos_BxD.at[pairs_N].get(mode="promise_in_bounds")
    u_neg_NxKxD = p.u_neg_GxKxD.at[pairs_N // (batch // groups)].get(mode="promise_in_bounds")
    return u_pos_NxD, u_neg_NxKxD, p.in_bend_BxJ.at[pairs_N].get(mode="promise_in_bounds")


def _output_pieces(p: _Pairs, xs):
    """One vector per output occurrence, pieces as the output gradient's (one piece of B x J: a
    draw per pair, centre then noise words; or two: centres, then G x K noise rows), as (the
    centres' B x D, the noise rows' G x K x D)."""
    batch, dim = p.v_BxD.shape
    groups, negative, _ = p.u_neg_GxKxD.shape
    if len(xs) == 1:
        x_BxJxD = xs[0].reshape(batch, 1 + negative, dim)
        return x_BxJxD[:, 0], x_BxJxD[:, 1:]
    return xs[0], xs[1].reshape(groups, negative, dim)


def _input_bends(p: _Pairs, g_NxD, pairs_N):
    """g' H g of each input occurrence: sum_j bend_j (u_j . g)^2 over the J rows its pair scores,
    g its row's total; `pairs_N` is the pair of each occurrence (None: occurrence b is pair b)."""
    batch, dim = p.v_BxD.shape
    groups = p.u_neg_GxKxD.shape[0]
    if pairs_N is None:
        pos_N = jnp.sum(g_NxD * p.u_pos_BxD, axis=-1)
        neg_GxPxK = jnp.einsum("gpd,gkd->gpk", g_NxD.reshape(groups, -1, dim), p.u_neg_GxKxD)
        neg_NxK = neg_GxPxK.reshape(batch, -1)
        bend_NxJ = p.in_bend_BxJ
    else:
        u_pos_NxD, u_neg_NxKxD, bend_NxJ = _pair_partners(p, pairs_N)
        pos_N = jnp.sum(g_NxD * u_pos_NxD, axis=-1)
        neg_NxK = jnp.einsum("nkd,nd->nk", u_neg_NxKxD, g_NxD)
    proj_NxJ = jnp.concatenate([pos_N[:, None], neg_NxK], axis=1)
    return jnp.sum(bend_NxJ * proj_NxJ * proj_NxJ, axis=1)


def _output_bends(p: _Pairs, totals):
    """g' H g of each output occurrence, pieces as the output gradient's: the centre row of each
    pair, bend (v . g)^2, and each noise row, summed over the pairs of its group that score it.

    Args:
      totals: each occurrence's row total (`_Slots.spread` of the sums): one piece of B x J (a
        draw per pair: centre, then noise words) or two (centres, then G x K noise rows).
    """
    dim, groups = p.v_BxD.shape[1], p.u_neg_GxKxD.shape[0]
    g_pos_BxD, g_neg_GxKxD = _output_pieces(p, totals)
    pos_B = p.out_bend_BxJ[:, 0] * jnp.square(jnp.sum(p.v_BxD * g_pos_BxD, axis=-1))
    proj_GxPxK = jnp.einsum("gpd,gkd->gpk", p.v_BxD.reshape(groups, -1, dim), g_neg_GxKxD)
    bend_GxPxK = p.out_bend_BxJ[:, 1:].reshape(proj_GxPxK.shape)
    neg_GxK = jnp.sum(bend_GxPxK * proj_GxPxK * proj_GxPxK, axis=1)
    if len(totals) == 1:  # as the gradient: each pair's centre, then its noise words
        return (jnp.concatenate([pos_B[:, None], neg_GxK], axis=1).reshape(-1),)
    return (pos_B, neg_GxK.reshape(-1))


def _input_curvature_times(p: _Pairs, x_NxD, pairs_N):
    """H_o x of each input occurrence o: sum_j bend_j u_j (u_j . x) over the J rows its pair
    scores, x its row's vector (`_input_bends` is x . H_o x); `pairs_N` as there."""
    dim, groups = p.v_BxD.shape[1], p.u_neg_GxKxD.shape[0]
    if pairs_N is None:
        u_pos_NxD, bend_NxJ = p.u_pos_BxD, p.in_bend_BxJ
        neg_GxPxK = jnp.einsum("gpd,gkd->gpk", x_NxD.reshape(groups, -1, dim), p.u_neg_GxKxD)
        bent_GxPxK = bend_NxJ[:, 1:].reshape(neg_GxPxK.shape) * neg_GxPxK
        neg_NxD = jnp.einsum("gpk,gkd->gpd", bent_GxPxK, p.u_neg_GxKxD).reshape(-1, dim)
    else:
        u_pos_NxD, u_neg_NxKxD, bend_NxJ = _pair_partners(p, pairs_N)
        neg_NxK = jnp.einsum("nkd,nd->nk", u_neg_NxKxD, x_NxD)
        neg_NxD = jnp.einsum("nk,nkd->nd", bend_NxJ[:, 1:] * neg_NxK, u_neg_NxKxD)
    pos_N = bend_NxJ[:, 0] * jnp.sum(x_NxD * u_pos_NxD, axis=-1)
    return pos_N[:, None] * u_pos_NxD + neg_NxD


def _output_curvature_times(p: _Pairs, xs):
    """H_o x of each output occurrence (`_output_bends` is x . H_o x), pieces as there: the
    centre row of each pair, bend v (v . x), and each noise row, summed over its group's pairs."""
    dim, groups = p.v_BxD.shape[1], p.u_neg_GxKxD.shape[0]
    x_pos_BxD, x_neg_GxKxD = _output_pieces(p, xs)
    pos_B = p.out_bend_BxJ[:, 0] * jnp.sum(p.v_BxD * x_pos_BxD, axis=-1)
    pos_BxD = pos_B[:, None] * p.v_BxD
    v_GxPxD = p.v_BxD.reshape(groups, -1, dim)
    proj_GxPxK = jnp.einsum("gpd,gkd->gpk", v_GxPxD, x_neg_GxKxD)
    bent_GxPxK = p.out_bend_BxJ[:, 1:].reshape(proj_GxPxK.shape) * proj_GxPxK
    neg_GxKxD = jnp.einsum("gpk,gpd->gkd", bent_GxPxK, v_GxPxD)
    if len(xs) == 1:
        return (jnp.concatenate([pos_BxD[:, None], neg_GxKxD], axis=1).reshape(-1, dim),)
    return (pos_BxD, neg_GxKxD.reshape(-1, dim))


def _krylov_steps(rule, slots: _Slots, sums_SxD, curvature_times, time, directions, step_max=None):
    """Each row's step over a time `time` in the k directions of the Krylov subspace
    span(g, Hg, ..., H^(k-1) g) of its curvature (`TrainConfig.row_directions` = k; Lanczos, one
    product with H a direction), g the row's summed gradient and H its block of the step's
    Hessian. Along a direction of curvature c (an eigenvalue of H projected on the subspace) the
    row moves by a share of the gradient there:

    - "implicit": time / (1 + time c), the proximal step -(H + I / time)^-1 g, which minimises
      the step's loss to second order plus |delta|^2 / (2 time): time (plain SGD) where c is
      small, near a Newton step 1 / c where it is large, half of plain SGD's at c = 1 / time;
    - "newton": min(time, 1 / c), newton's filter on each direction alone: plain SGD up to the
      minimum along it, then that minimum (k = 2 only, the 2 x 2 eigenvalues in closed form;
      k = 1 is newton along g, min(time, 1 / h), h = g'Hg / |g|^2: `_curvature_scales`).

    With k = 1 the step is along g alone, sized by the curvature along g, which on a frequent
    row is its stiffest direction's (the noise words' common direction): every other direction
    under-moves. With k = 2 those few stiff directions stop at their minimum while the others
    move as plain SGD would (BENCHMARKS.md, section 7).

    Args:
      rule: "implicit" or "newton" (directions 2).
      slots: `_slots` of the table's gradient rows.
      sums_SxD: the gradient summed in those slots.
      curvature_times: (x by slot, S x D) -> each slot's row block of H times x, S x D.
      time: the step's learning rate (scalar), or the share of it one pass takes.
      directions: k.
      step_max: if given, no row moves further than this (`TrainConfig.row_step_max`).

    Returns:
      Each slot's move, S x D (zero where the gradient is).
    """
    norm_S = jnp.sqrt(jnp.sum(sums_SxD * sums_SxD, axis=-1))
    q_SxD = sums_SxD / jnp.where(norm_S > 0, norm_S, 1.0)[:, None]
    basis, diagonal, off_diagonal = [q_SxD], [], []
    for i in range(directions):
        w_SxD = curvature_times(basis[-1])
        diagonal.append(jnp.sum(basis[-1] * w_SxD, axis=-1))
        if i == directions - 1:
            break
        for q in basis:  # Lanczos, orthogonalised against every direction so far (k is small)
            w_SxD = w_SxD - jnp.sum(q * w_SxD, axis=-1)[:, None] * q
        beta_S = jnp.sqrt(jnp.sum(w_SxD * w_SxD, axis=-1))
        # The subspace is exhausted where nothing new is left (a row in few pairs): its later
        # directions are zero, and so is their part of the step.
        beta_S = jnp.where(beta_S > 1e-6 * jnp.abs(diagonal[-1]), beta_S, 0.0)
        off_diagonal.append(beta_S)
        basis.append(w_SxD / jnp.where(beta_S > 0, beta_S, 1.0)[:, None])
    # In the basis H is tridiagonal, T (alpha on the diagonal, beta beside it), and g is |g| e1:
    # the move is |g| f(T) e1, f the rule's share, computed one slot per lane - no batched
    # LAPACK call for many tiny systems (one of 61k 2 x 2 solves hung the CPU process).
    if rule == "newton":
        coef = _newton_filter_e1(diagonal, off_diagonal, time)
    else:
        coef = _proximal_e1(diagonal, off_diagonal, time)
    move_SxD = sum(c_S[:, None] * q for c_S, q in zip(coef, basis, strict=True))
    delta_SxD = -norm_S[:, None] * move_SxD
    if step_max is not None:
        length_S = jnp.sqrt(jnp.sum(delta_SxD * delta_SxD, axis=-1))
        delta_SxD = delta_SxD * jnp.minimum(1.0, step_max / jnp.maximum(length_S, 1e-30))[:, None]
    return delta_SxD


def _proximal_e1(diagonal, off_diagonal, time):
    """(T + I / time)^-1 e1, T tridiagonal (lists of S-vectors), by elimination: symmetric
    positive definite, no pivoting."""
    pivots, solved = [diagonal[0] + 1.0 / time], [1.0 / (diagonal[0] + 1.0 / time)]
    for i, beta_S in enumerate(off_diagonal):
        ratio_S = beta_S / pivots[-1]
        pivots.append(diagonal[i + 1] + 1.0 / time - ratio_S * beta_S)
        solved.append(-beta_S * solved[-1] / pivots[-1])
    coef = [solved[-1]]
    for i in reversed(range(len(off_diagonal))):
        coef.insert(0, solved[i] - off_diagonal[i] / pivots[i] * coef[0])
    return coef


def _newton_filter_e1(diagonal, off_diagonal, time):
    """f(T) e1 with f(c) = min(time, 1 / c), T 2 x 2 (lists of S-vectors). With T's eigenvalues
    high >= low: f(T) = f(low) I + (f(high) - f(low)) / (high - low) (T - low I), whose first
    column needs no eigenvectors (and is f(alpha) e1 where beta = 0)."""

    def f(c_S):
        return jnp.minimum(time, 1.0 / jnp.maximum(c_S, 1e-30))

    a_S, d_S, b_S = diagonal[0], diagonal[1], off_diagonal[0]
    half_S = jnp.sqrt(((a_S - d_S) / 2) ** 2 + b_S * b_S)
    high_S, low_S = (a_S + d_S) / 2 + half_S, (a_S + d_S) / 2 - half_S
    gap_S = high_S - low_S
    apart = gap_S > 1e-6 * jnp.maximum(high_S, 1e-30)  # else f(T) = f(low) I
    slope_S = jnp.where(apart, (f(high_S) - f(low_S)) / jnp.where(apart, gap_S, 1.0), 0.0)
    return [f(low_S) + slope_S * (a_S - low_S), slope_S * b_S]


def _curvature_scales(rule, lr, slots: _Slots, sums_SxD, bends, step_max=None, left_S=None):
    """Per-occurrence factors of the curvature rules of `TrainConfig.row_scale`.

    A row whose summed gradient in the step is g moves by -lr g under plain SGD. Along g, the
    step's loss bends by h = g' H g / |g|^2, H the row's block of the Hessian: each score s = x . r
    that the row r takes part in adds sigmoid'(s) x x^T (x the other row of the pair; exact, the
    score being linear in r). "newton" moves the row by -min(lr, 1/h) g: plain SGD, except where
    the plain step would go past the minimum of the loss along g, which it then reaches in one
    Newton step - what a frequent word's row needs in a large batch, where thousands of pairs
    push it the same way at once and their plain sum overshoots and diverges. "sequential" is
    newton's, but the output rows take theirs after the input rows have moved, at the moved rows
    (no score moves by both of its rows' steps at once: stable where newton is not, less
    accurate where it is; BENCHMARKS.md, section 7). ("implicit", and "newton" with
    `TrainConfig.row_directions` 2, are `_krylov_steps`.)

    Args:
      rule: "newton", "sequential" or "joint" (the last two size steps as "newton").
      lr: the step's learning rate.
      slots: `_slots` of the table's gradient rows.
      sums_SxD: the gradient summed in those slots.
      bends: each occurrence's g' H_o g (pieces as the gradient's).
      step_max: if given, no row moves further than this (`TrainConfig.row_step_max`): where the
        rule's step lr * scale * |g| is longer, the scale shrinks to reach step_max.
      left_S: newton with `TrainConfig.row_passes` > 1: the learning rate each slot's row has
        left this step (lr at the first pass). A row moves by -min(left, 1/h) g and spends that
        much: a row that took its plain step is done, one stopped at a minimum goes on from it.

    Returns:
      (a tuple of (N,) factors matching the gradient's pieces, the rate each slot has left after
      this pass - 0 for a row the step_max limit shortened; None without `left_S`).
    """
    quad_S = slots.sum(jnp.concatenate(bends))
    norm_S = jnp.sum(sums_SxD * sums_SxD, axis=-1)
    h_S = quad_S / jnp.where(norm_S > 0, norm_S, 1.0)
    if left_S is not None:  # (left / lr) / max(1, left h): relative to the step's lr
        scale_S = left_S / (lr * jnp.maximum(1.0, left_S * h_S))
    else:
        scale_S = 1.0 / jnp.maximum(1.0, lr * h_S)
    if step_max is not None:
        length_S = lr * scale_S * jnp.sqrt(norm_S)
        shorten_S = jnp.minimum(1.0, step_max / jnp.maximum(length_S, 1e-30))
        scale_S = scale_S * shorten_S
    if left_S is not None:
        left_S = left_S - lr * scale_S
        if step_max is not None:  # it went as far as a step may
            left_S = jnp.where(shorten_S < 1.0, 0.0, left_S)
    return slots.spread(scale_S), left_S


def _scaled(grads, scales):
    return tuple(g * s[:, None] for g, s in zip(grads, scales, strict=True))


def _mm(a, b):
    """The rebalance's matrix products: float32 throughout (a GPU's default would round to TF32)."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _gram_gap(params):
    """E'E - U'U (D x D) of the input table E and the output table U."""
    embed, out = (params[name].astype(jnp.float32) for name in ("embed", "out"))
    return _mm(embed.T, embed) - _mm(out.T, out)


def _small_steps_gram(rows: int, per: int, ids, grads, pairs):
    """sum_i G_i' G_i over the batch's small steps of `per` examples each, G_i the summed
    gradients of a table's rows in small step i: over lr^2, what the plain SGD steps the batch
    stands for would add to the table's Gram matrix E'E (`_rebalance`).

    Args:
      rows: the table's rows (V).
      per: examples (pairs, CBOW centres) per small step: the objective's default batch size.
      ids, grads, pairs: pieces of each gradient occurrence's row, gradient (N x D) and example.
    """
    ids_N, grad_NxD, pairs_N = (jnp.concatenate(x) for x in (ids, grads, pairs))
    n = ids_N.shape[0]
    # (small step, row) keys must fit int32: a batch of more small steps than that merges them.
    limit = (2**31 - 1) // rows
    smalls = -(-pairs_N.shape[0] // per)
    if smalls > limit:
        per = -(-pairs_N.shape[0] // limit)
    keys_N = (pairs_N // per) * rows + ids_N
    _, slot_N = jnp.unique(keys_N, size=n, fill_value=0, return_inverse=True)
    sums_SxD = jax.ops.segment_sum(grad_NxD, slot_N.reshape(n), num_segments=n)
    return _mm(sums_SxD.T, sums_SxD)


def _rebalance(params, target_DxD, stretch_max: float = 1.0, key=None):
    """The tables E A and U A^-1 (A symmetric positive definite), whose scores E U' - and so the
    loss - are the step's own, with E'E - U'U moved to `target_DxD` (to first order in log A).

    Under gradient flow on a loss of the scores E U' alone, E'E - U'U is conserved (its
    derivative, E'G'U + U'GE - U'GE - E'G'U for G the loss's gradient in the scores, is zero);
    a plain SGD step of rate lr changes it only at second order, by lr^2 (G_E'G_E - G_U'G_U) for
    the rows' summed gradients G_E = G U and G_U = G'E. One large step of summed gradients moves
    it far from where the small steps it stands for would (`_small_steps_gram`), which leaves the
    input table with a larger share of the direction common to every vector and costs
    WordSim-353 at 512k-1M skip-gram pairs (BENCHMARKS.md, section 7). Every invertible A leaves
    the scores as they are; with A = exp(X), X symmetric, E'E - U'U moves by X S + S X (S =
    E'E + U'U) to first order, solved for X in the eigenbasis of S. No direction is stretched
    or shrunk by more than exp(stretch_max) in one step. bfloat16 tables are rounded back at
    random with `key` (`jaxembed.rows.stochastic_round`).
    """
    dtype = params["embed"].dtype
    embed, out = (params[name].astype(jnp.float32) for name in ("embed", "out"))
    gram_e, gram_u = _mm(embed.T, embed), _mm(out.T, out)
    lam_D, w_DxD = jnp.linalg.eigh(gram_e + gram_u)
    rest_DxD = _mm(w_DxD.T, _mm(target_DxD - gram_e + gram_u, w_DxD))
    sums_DxD = jnp.maximum(lam_D[:, None] + lam_D[None, :], 1e-12)
    x_DxD = _mm(w_DxD, _mm(rest_DxD / sums_DxD, w_DxD.T))
    mu_D, y_DxD = jnp.linalg.eigh((x_DxD + x_DxD.T) / 2)
    mu_D = jnp.clip(mu_D, -stretch_max, stretch_max)
    a_DxD = _mm(y_DxD * jnp.exp(mu_D)[None, :], y_DxD.T)
    a_inv_DxD = _mm(y_DxD * jnp.exp(-mu_D)[None, :], y_DxD.T)
    tables = {"embed": _mm(embed, a_DxD), "out": _mm(out, a_inv_DxD)}
    if dtype == jnp.float32:
        return tables
    in_key, out_key = jax.random.split(key, 2)
    return {
        "embed": stochastic_round(tables["embed"], in_key, dtype),
        "out": stochastic_round(tables["out"], out_key, dtype),
    }


class _SparseStep(NamedTuple):
    """What every pass of a sparse word2vec step reads (`_word2vec_sparse`)."""

    context: Callable  # _skipgram_context or _cbow_context
    config: Any  # TrainConfig
    rule: str  # row_scale's pick
    tx: optax.GradientTransformation
    batch: Mapping[str, jax.Array]
    noise_GxK: jax.Array
    weight_BxJ: jax.Array
    lr: jax.Array
    passes: int  # row_passes's pick
    step_max: float | None  # row_step_max's pick
    directions: int  # row_directions's pick
    balance: bool  # row_balance's pick
    key: jax.Array | None  # a bfloat16 table's rounding key (the step's; float32: None)

    @property
    def krylov(self) -> bool:
        """Rows move by `_krylov_steps` (else newton's along g, or a counting rule)."""
        return self.rule == "implicit" or (self.rule == "newton" and self.directions > 1)


def _word2vec_sparse(
    context,
    config,
    rule,
    tx,
    params,
    opt_state,
    batch,
    noise_GxK,
    weight_BxJ,
    lr,
    *,
    passes,
    step_max,
    directions,
    balance=False,
    key=None,
):
    """Gather the rows, closed-form row gradients, optax on those rows, scatter back. newton
    makes `passes` (`row_passes`) such passes over the batch, each at the rows the last one
    moved, a row spending at most lr over them all (`_curvature_scales`); implicit, and newton
    with `row_directions` 2, make `passes` steps of lr / passes each (`_krylov_steps`). The loss
    is the first pass's. No row moves further than `step_max` (`row_step_max`) in the step.
    With `balance` (`row_balance`) the tables are then rebalanced as the small steps the batch
    stands for would have left them (`_rebalance`). `key` rounds bfloat16 tables
    (`TrainConfig.table_dtype`), a key a pass and one for the rebalance."""
    common = (context, config, rule, tx, batch, noise_GxK, weight_BxJ, lr)
    step = _SparseStep(
        *common,
        passes=passes,
        step_max=step_max,
        directions=directions,
        balance=balance,
        key=key,
    )
    newton_passes = step.passes > 1 and rule == "newton" and not step.krylov
    left = (lr, lr) if newton_passes else (None, None)  # each table's rate left, a row at a time
    if balance:
        target_DxD = _gram_gap(params)
    loss_sum, params, opt_state, left, drift = _word2vec_sparse_pass(step, params, opt_state, left)
    for i in range(1, step.passes):
        _, params, opt_state, left, _ = _word2vec_sparse_pass(step, params, opt_state, left, i)
    if balance:
        rounding = None if key is None else jax.random.fold_in(key, step.passes)
        params = _rebalance(params, target_DxD + drift, key=rounding)
    return loss_sum, params, opt_state


def _small_steps_drift(step: _SparseStep, rows, in_ids, grad_in, out_ids, grad_u):
    """lr^2 sum_i (G_E,i' G_E,i - G_U,i' G_U,i) over the batch's small steps of the objective's
    default batch size: how plain SGD's small steps would move E'E - U'U (`_rebalance`).
    Skip-gram's (`Objective.balances`): input row b is pair b's."""
    config, batch, noise_GxK = step.config, step.batch, step.noise_GxK
    per = get(config.objective).batch_size
    examples = batch["center_B"].shape[0]
    if len(out_ids) == 1:  # one draw a pair: pair b's centre and noise rows, J of them
        out_pairs = (jnp.arange(out_ids[0].shape[0]) // (out_ids[0].shape[0] // examples),)
    else:  # the centres, then each group's K noise rows at its first pair
        groups, negative = noise_GxK.shape
        group_K = jnp.repeat(jnp.arange(groups) * (examples // groups), negative)
        out_pairs = (jnp.arange(examples), group_K)
    gram_in = _small_steps_gram(rows, per, in_ids, grad_in, (jnp.arange(examples),))
    gram_out = _small_steps_gram(rows, per, out_ids, grad_u, out_pairs)
    return step.lr * step.lr * (gram_in - gram_out)


def _word2vec_sparse_pass(step: _SparseStep, params, opt_state, left, index=0):
    """Pass `index` of `_word2vec_sparse`; the first (0) also returns `_small_steps_drift` when
    the step rebalances (else None). A bfloat16 table rounds with fold_in(step.key, index)."""
    context, config, rule, tx, batch, noise_GxK, weight_BxJ, lr, passes, step_max, k, _, _ = step
    in_key, out_key = (None, None)
    if step.key is not None:
        in_key, out_key = jax.random.split(jax.random.fold_in(step.key, index), 2)
    embed, out = params["embed"], params["out"]
    center_B, dim = batch["center_B"], embed.shape[1]
    in_ids, v_BxD, spread, in_weights, in_pairs = context(embed, batch)
    if config.share_negatives == 1:
        out_ids_BxJ = jnp.concatenate([center_B[:, None], noise_GxK], axis=1)
        # Materialise the IDs: fused into the gather, they would be recomputed for every float.
        out_ids_BxJ = jax.lax.optimization_barrier(out_ids_BxJ)
        u_BxJxD = _rows(out, out_ids_BxJ)
        u_pos_BxD, u_neg_GxKxD = u_BxJxD[:, 0], u_BxJxD[:, 1:]
        out_ids = (out_ids_BxJ.reshape(-1),)
        out_weights = ((weight_BxJ > 0).astype(jnp.float32).reshape(-1),)

        def rows(v_BxD):
            loss_sum, grad_v_BxD, grad_u_BxJxD = negative_sampling_rows(v_BxD, u_BxJxD, weight_BxJ)
            return loss_sum, grad_v_BxD, (grad_u_BxJxD.reshape(-1, dim),)
    else:
        u_pos_BxD = _rows(out, center_B)
        u_neg_GxKxD = _rows(out, noise_GxK)
        out_ids = (center_B, noise_GxK.reshape(-1))
        # A shared noise row carries the gradients of the pairs of its group that score it.
        groups, negative = noise_GxK.shape
        scored_GxK = (weight_BxJ[:, 1:] > 0).reshape(groups, -1, negative).sum(axis=1)
        out_weights = (batch["mask_B"], scored_GxK.astype(jnp.float32).reshape(-1))

        def rows(v_BxD):
            loss_sum, grad_v_BxD, grad_pos, grad_neg = shared_negative_sampling_rows(
                v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ
            )
            return loss_sum, grad_v_BxD, (grad_pos, grad_neg.reshape(-1, dim))

    loss_sum, grad_v_BxD, grad_u = rows(v_BxD)
    grad_in = (spread(grad_v_BxD).reshape(-1, dim),)
    in_ids = (in_ids.reshape(-1),)
    drift = None
    if index == 0 and step.balance:
        drift = _small_steps_drift(step, embed.shape[0], in_ids, grad_in, out_ids, grad_u)
    if rule != "none":
        in_slots, out_slots = _slots(embed.shape[0], in_ids), _slots(embed.shape[0], out_ids)
    if step.krylov:
        bend_BxJ = _bends(v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ)
        pairs = _Pairs(v_BxD, u_pos_BxD, u_neg_GxKxD, bend_BxJ, bend_BxJ)
        in_pairs = None if in_pairs is None else in_pairs.reshape(-1)
        in_weights_N = in_weights.reshape(-1)

        def in_times(x_SxD):
            (x_NxD,) = in_slots.spread(x_SxD)
            times_NxD = _input_curvature_times(pairs, x_NxD, in_pairs)
            return in_slots.sum(in_weights_N[:, None] * times_NxD)

        def out_times(x_SxD):
            times = _output_curvature_times(pairs, out_slots.spread(x_SxD))
            return out_slots.sum(jnp.concatenate(times))

        moves = [
            _krylov_steps(rule, slots, sums, times, lr / passes, k, step_max)
            for slots, sums, times in (
                (in_slots, in_slots.sum(grad_in[0]), in_times),
                (out_slots, out_slots.sum(jnp.concatenate(grad_u)), out_times),
            )
        ]
        # Each row's move as a gradient of its own, which SGD at rate lr applies as it is.
        in_ids, grad_in = in_slots.rows_S, -moves[0] / lr
        out_ids, grad_u = out_slots.rows_S, -moves[1] / lr
    elif rule in CURVATURE_RULES:
        bends = (_bends(v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ),) * 2
        if rule == "joint":
            bends = _joint_bends(v_BxD, u_pos_BxD, u_neg_GxKxD, bends[0])
        pairs = _Pairs(v_BxD, u_pos_BxD, u_neg_GxKxD, *bends)
        in_sums = in_slots.sum(grad_in[0])
        (g_in,) = in_slots.spread(in_sums)
        in_pairs = None if in_pairs is None else in_pairs.reshape(-1)
        in_bends = (in_weights.reshape(-1) * _input_bends(pairs, g_in, in_pairs),)
        in_left, out_left = left
        in_scales, in_left = _curvature_scales(
            rule, lr, in_slots, in_sums, in_bends, step_max, in_left
        )
        grad_in = _scaled(grad_in, in_scales)
        if rule == "sequential":
            # The input rows move first; the output rows then take their step against the moved
            # input rows, so that no score moves by both of its rows' steps at once.
            embed, opt_embed = sparse_update(
                tx, embed, opt_state["embed"], in_ids, grad_in, key=in_key
            )
            _, v_BxD, _, _, _ = context(embed, batch)
            _, _, grad_u = rows(v_BxD)
            bend_BxJ = _bends(v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ)
            pairs = _Pairs(v_BxD, u_pos_BxD, u_neg_GxKxD, bend_BxJ, bend_BxJ)
        out_sums = out_slots.sum(jnp.concatenate(grad_u))
        out_bends = _output_bends(pairs, out_slots.spread(out_sums))
        out_scales, out_left = _curvature_scales(
            rule, lr, out_slots, out_sums, out_bends, step_max, out_left
        )
        left = (in_left, out_left)
        grad_u = _scaled(grad_u, out_scales)
    elif rule != "none":
        counting = (rule, config.row_cap)
        grad_in = _scaled(grad_in, _row_scales(counting, in_slots, (in_weights.reshape(-1),)))
        grad_u = _scaled(grad_u, _row_scales(counting, out_slots, out_weights))
    if rule != "sequential":
        embed, opt_embed = sparse_update(tx, embed, opt_state["embed"], in_ids, grad_in, key=in_key)
    out, opt_out = sparse_update(tx, out, opt_state["out"], out_ids, grad_u, key=out_key)
    params = {"embed": embed, "out": out}
    return loss_sum, params, {"embed": opt_embed, "out": opt_out}, left, drift


def _word2vec_dense(context, config, rule, tx, params, opt_state, batch, noise_GxK, weight_BxJ, lr):
    """Autodiff of the loss with respect to the whole tables, optax on the whole tables."""

    def loss(params):
        _, v_BxD, _, _, _ = context(params["embed"], batch)
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
    batch_size = batch["center_B"].shape[0]
    picked = row_step(config, batch_size)
    rule, passes = picked["row_scale"], picked["row_passes"]
    step_max, directions = picked["row_step_max"], picked["row_directions"]
    balance = picked["row_balance"]
    batch = _pad_to_groups(config, batch)
    noise_GxK = batch.get("noise_GxK")
    if noise_GxK is None:
        noise_GxK = draw_noise(config, state, alias, batch["center_B"].shape[0])
    weight_BxJ = pair_weights(batch["center_B"], noise_GxK, batch["mask_B"])
    update = (
        functools.partial(
            _word2vec_sparse,
            passes=passes,
            step_max=step_max,
            directions=directions,
            balance=balance,
            key=rounding_key(config, state),
        )
        if config.sparse
        else _word2vec_dense
    )
    loss_sum, params, opt_state = update(
        context, config, rule, tx, state.params, state.opt_state, batch, noise_GxK, weight_BxJ, lr
    )
    return loss_sum, count, params, opt_state


def _word2vec_init(key, config, rows):
    """word2vec's tables: input rows uniform in +-0.5/D (word2vec.c, gensim), output rows 0;
    in `TrainConfig.table_dtype`."""
    tables = _word2vec_tables(key, rows, config.dim, config.table_dtype)
    return tables, ("['embed']", "['out']")


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _word2vec_tables(key, rows: int, dim: int, dtype: str = "float32") -> dict:
    # Jitted: the random bits, their conversion and scaling fuse into the one output buffer (run
    # op by op, each made its own V x D temporary: 150 MB more peak memory at 61k x 200).
    bound = 0.5 / dim
    embed = jax.random.uniform(key, (rows, dim), jnp.float32, -bound, bound).astype(dtype)
    return {"embed": embed, "out": jnp.zeros((rows, dim), dtype)}


def _skipgram_batches(corpus, train, fit, epoch, start_batch):
    common = dict(seed=train.seed, epoch=epoch, epochs=fit.epochs, start_batch=start_batch)
    return data.skipgram_batches(
        corpus, fit.window, fit.sample, fit.batch_size, chunk_tokens=fit.shuffle_words, **common
    )


def _cbow_batches(corpus, train, fit, epoch, start_batch):
    common = dict(seed=train.seed, epoch=epoch, epochs=fit.epochs, start_batch=start_batch)
    return data.cbow_batches(
        corpus, fit.window, fit.sample, fit.batch_size, chunk_tokens=fit.shuffle_words, **common
    )


# ---------------------------------------------------------------------------- next-token step


def _next_token_init(key, config, rows):
    from jaxembed.next_token import NextTokenModel  # flax: only for this objective

    model = NextTokenModel(rows, config.dim, config.context_length)
    params = model.init(key, jnp.zeros((1, config.context_length), jnp.int32))
    return params, ("['params']['embed']['embedding']",)


def _next_token_update(config, tx, state, batch, alias, lr):
    """Autodiff of the summed cross-entropy, optax on every parameter."""
    from jaxembed.next_token import NextTokenModel, next_token_loss

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
    # FitConfig's defaults on a GPU or TPU: a batch large enough to keep the device busy (None:
    # batch_size), and steps per call (the host never waits inside a call)
    accelerator_batch_size: int | None = None
    accelerator_steps_per_call: int = 256
    share_negatives: int = 64  # TrainConfig.share_negatives's default (word2vec objectives)
    # TrainConfig.row_passes=None: newton makes two passes over a batch larger than this (None:
    # one at any size)
    two_passes_above: int | None = None
    # ... four above this where newton resolves one direction of a row's curvature (None: never)
    four_passes_above: int | None = None
    # TrainConfig.row_directions=None under row_scale="auto": newton resolves two directions of
    # each row's curvature in a step larger than this (None: one at any size)
    two_directions_above: int | None = None
    # TrainConfig.row_passes=None: the passes of a newton step that resolves two directions
    # (None: as for one direction, by batch size)
    two_directions_passes: int | None = None
    # TrainConfig.row_step_max=None under row_scale="auto": no row moves further than 1.0 in a
    # step larger than this (None: no limit at any size)
    bound_steps_above: int | None = None
    # Whether its step can rebalance its tables (TrainConfig.row_balance): each row gets the
    # gradient of a loss of the scores E U' alone, which is what keeps E'E - U'U still under
    # small steps (not CBOW: word2vec gives every context row the whole error of their mean)
    balances: bool = False
    # TrainConfig.row_balance=None under row_scale="auto": a step larger than this rebalances
    # its tables as its small steps would (None: never)
    balance_above: int | None = None


_WORD2VEC = dict(negatives=True, sparse=True, optimizer="sgd", min_lr=0.0001)
SKIPGRAM = Objective(
    "skipgram",
    ("center_B", "context_B", "mask_B", "progress"),
    _skipgram_batches,
    _word2vec_init,
    functools.partial(_word2vec_update, _skipgram_context),
    lr=0.025,  # word2vec.c's and gensim's
    batch_size=4096,
    # 16x the CPU's, with row_scale="auto"'s newton step: within 0.3 analogy points of the
    # 4,096-pair run on corpus-en-11m (BENCHMARKS.md, section 7); 16 steps = 1M pairs a call
    accelerator_batch_size=65536,
    accelerator_steps_per_call=16,
    # one newton pass was within 0.3 points at 131,072 pairs (1M-word chunks), two were needed at
    # 262,144 (BENCHMARKS.md, section 7)
    two_passes_above=131072,
    # 524,288 pairs: auto's newton (two passes) diverged in its first call; with each row's step
    # at most 1.0 long it scored 23.33%; 1,048,576 pairs, bounded: 2 passes 21.07%, 4 23.21%;
    # in two directions, 2 passes, bounded: 25.23% and 25.04% / 24.54% (BENCHMARKS.md, 7)
    four_passes_above=524288,
    two_directions_above=262144,
    bound_steps_above=262144,
    balances=True,
    # 1,048,576 pairs, seed 1: auto's step without the rebalance 25.04% / WordSim-353 0.584 (its
    # common direction 0.454), with it 26.02% / 0.621 (0.349; 4,096 pairs: 0.363)
    balance_above=262144,
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
    accelerator_batch_size=4096,  # 8x the CPU's, newton (BENCHMARKS.md, section 7)
    accelerator_steps_per_call=64,
    # Fewer centres per noise draw than skip-gram's pairs: on corpus-en-11m (two seeds) 16 scored
    # 26.5% analogies / 0.666 WordSim-353 against 25.7% / 0.683 with 64, at 0.91x the words/s;
    # fastText scores 26.4-26.7% / 0.624 (BENCHMARKS.md, section 2).
    share_negatives=16,
    # one newton pass was within 1 point at 32,768 centres (~180k pairs), 7 points short at
    # 131,072, where two passes were 0.9 short (mean of two seeds; 1.8 at equal chunks); two
    # passes in two directions, bounded: 1.2 points above at equal chunks but WordSim-353 0.016
    # below; one pass in two directions, bounded: 0.1 points below, WordSim-353 0.002 above
    # (three seeds each). 65,536 centres, two passes along the gradient: -0.3, -0.003 (one seed;
    # BENCHMARKS.md, section 7)
    two_passes_above=32768,
    two_directions_above=65536,
    two_directions_passes=1,
    bound_steps_above=65536,
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
