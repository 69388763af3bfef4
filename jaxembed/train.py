"""Learning the table: training state and the jitted optax step, on one device or many.

The objectives (word2vec skip-gram and CBOW with negative sampling, next-token prediction) are
pure functions in `jaxembed.objectives`; the mesh helpers in `jaxembed.mesh`.

``train_step(state, batch) -> (state, metrics)`` is pure; ``make_train_step`` jits it with the
state donated and, optionally, scans it over a stack of batches: one dispatch for many small
steps, whose rows stay in cache and which are closer to word2vec's one-pair-at-a-time SGD. The
learning rate decays linearly from ``lr`` to ``min_lr`` over training (word2vec's schedule,
driven by the batch's ``progress``) and is injected into the optax transform at each step.
Noise words are drawn inside the step from ``fold_in(key, step)``.

Which rows get updated (``TrainConfig.update``):

- ``"dense"``: autodiff of the loss with respect to the whole (V, D) tables, optax on the whole
  tables.
- ``"sparse"``: the closed-form gradients of the rows the batch gathered, optax's update of
  those rows, scattered back with ``.at[].add`` (one gather and one scatter per table). For SGD
  it equals the dense step up to float summation order. With Adam the moments of the touched
  rows are gathered, updated by optax and set back: "lazy Adam", whose untouched rows neither
  move nor decay their moments, unlike dense Adam.
- ``"auto"`` (default): sparse for word2vec with SGD, which equals dense and was faster at
  every size measured; dense for Adam/AdamW (true Adam; lazy Adam is only faster at large V)
  and for next-token, whose softmax over the vocabulary touches every row anyway.

Measured with benchmarks/train_step.py (skip-gram, 4,096 pairs a step, 2-core Xeon, jax 0.10.2,
ms per step; dense / sparse):

    V       D     SGD             Adam (sparse = lazy)
    10,000  200   16.8 / 11.6     20.5 / 35.3
    10,000  768   67.7 / 55.2     81.0 / 129.5
    50,000  200   33.1 / 12.2     48.5 / 38.2
    50,000  768   135.6 / 63.0    208.5 / 155.8

Noise words (``TrainConfig.share_negatives``, default 64). word2vec.c draws K fresh noise words
for every (centre, context) pair, so a pair gathers and scatters 1 + 1 + K rows, and on CPU that
row traffic is the step (the scatter of the output rows alone is ~30% of it). By default G = 64
consecutive pairs of a batch share one draw of K noise words, the negative-sample sharing of Ji
et al. 2016 ("Parallelizing Word2Vec in Shared and Distributed Memory"). Each pair still scores
K words drawn from word2vec's unigram^0.75 distribution, so each pair's loss has word2vec's
distribution and the expected gradient is unchanged; the pairs of a group just see the same
words (correlated, not biased). Noise rows are then read G-fold less often and their products are
matrix products. A batch that is not a multiple of G ends with a shorter group. ``share_negatives
=1`` is word2vec.c's draw per pair. The cost of sharing: a shared noise row gets the summed
gradient of G pairs at once, which diverged in a test on 32 words at 20x word2vec's learning
rate (0.5) where a draw per pair did not; at word2vec's 0.025 no run we made was affected.

Measured on corpus-en-11m (benchmarks/train_vs_gensim.py; skip-gram, D=200, window 5, negative
5, sample 1e-4, min-count 5, 5 epochs, 2 cores; analogies restricted to 30,000 words):

    share_negatives (batch)    words/s     analogies   WordSim-353   gensim in the same run
    1 (1,024)                  198,000     25.3%       0.583         292,000  23.3%  0.563
    64 (1,024)                 509,000     24.8%       0.657         423,000  24.1%  0.565
    64 (4,096), seed 1         667,000     24.7%       0.645         431,000  23.8%  0.575
    64 (4,096), seed 2         668,000     26.2%       0.644         432,000  23.5%  0.566

    >>> config = TrainConfig(objective="skipgram", dim=100)
    >>> state = init_state(config, vocab_size=len(corpus.vocab))
    >>> step = make_train_step(config, noise_distribution(corpus.vocab.counts))
    >>> state, metrics = step(state, batch)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxembed import objectives as ob
from jaxembed.mesh import state_sharding

OBJECTIVES = ("skipgram", "cbow", "next-token")
OPTIMIZERS = ("sgd", "adam", "adamw")
UPDATES = ("auto", "sparse", "dense")
# The arrays of a batch each objective's step reads (the rest, e.g. "words", stays on the host).
BATCH_KEYS = {
    "skipgram": ("center_B", "context_B", "mask_B", "progress"),
    "cbow": ("center_B", "context_BxC", "context_mask_BxC", "mask_B", "progress"),
    "next-token": ("inputs_BxT", "targets_BxT", "mask_B", "progress"),
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a table is learned (the model and optimiser; the data side lives in jaxembed.data)."""

    objective: str = "skipgram"  # "skipgram", "cbow" or "next-token"
    dim: int = 100  # D, the vector size (gensim's vector_size)
    negative: int = 5  # noise words per positive pair (gensim's negative); word2vec objectives
    share_negatives: int = 64  # consecutive pairs sharing one draw of noise words; 1 = one each
    optimizer: str = "sgd"  # "sgd", "adam" or "adamw" (optax)
    lr: float = 0.025  # initial learning rate (gensim's alpha)
    min_lr: float = 0.0001  # learning rate at the end of training, reached linearly (min_alpha)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    update: str = "auto"  # "auto", "sparse" (rows the batch touches) or "dense" (whole table)
    context_length: int = 64  # next-token: positions in the position table (T)
    seed: int = 0  # initial table and noise-word draws

    def __post_init__(self) -> None:
        for name, allowed in (
            ("objective", OBJECTIVES),
            ("optimizer", OPTIMIZERS),
            ("update", UPDATES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        for name in ("dim", "negative", "share_negatives", "context_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not self.lr > 0 or not self.min_lr >= 0 or self.min_lr > self.lr:
            raise ValueError(
                f"need lr > 0 and 0 <= min_lr <= lr; got lr={self.lr}, min_lr={self.min_lr}"
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")

    @property
    def sparse(self) -> bool:
        """Whether the step updates only the rows a batch touches (see the module docstring)."""
        if self.objective == "next-token":
            return False
        if self.update == "auto":
            return self.optimizer == "sgd"
        return self.update == "sparse"


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; a pytree, so it can be jitted, sharded and saved."""

    step: jax.Array  # int32 scalar: steps taken; the noise draws use fold_in(key, step)
    params: Any  # word2vec: {"embed": VxD, "out": VxD}; next-token: flax variables
    opt_state: Any  # optax state (word2vec: one per table, so rows can be gathered per table)
    key: jax.Array  # uint32 (2,) raw PRNG key data (raw so orbax can save it)


# ---------------------------------------------------------------------------- state


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optax transform, its learning rate injected so the step can set it (linear decay)."""
    if config.optimizer == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=config.lr)
    if config.optimizer == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=config.lr)
    return optax.inject_hyperparams(optax.adamw)(
        learning_rate=config.lr, weight_decay=config.weight_decay
    )


def init_state(config: TrainConfig, vocab_size: int) -> TrainState:
    """A fresh state: word2vec's initial tables (or the next-token model's) and optimiser state.

    Args:
      config: the training configuration (objective, dim, optimizer, seed).
      vocab_size: V, rows of the token table.

    Returns:
      A TrainState on the default device, step 0.

    Example:
      >>> state = init_state(TrainConfig(dim=16), vocab_size=32)
      >>> state.params["embed"].shape, float(jnp.abs(state.params["out"]).max())
      ((32, 16), 0.0)
    """
    if (
        isinstance(vocab_size, bool)
        or not isinstance(vocab_size, int | np.integer)
        or vocab_size < 1
    ):
        raise ValueError(f"vocab_size must be a positive integer; got {vocab_size!r}")
    init_key, noise_key = jax.random.split(jax.random.key(config.seed))
    tx = make_optimizer(config)
    if config.objective == "next-token":
        model = ob.NextTokenModel(int(vocab_size), config.dim, config.context_length)
        params = model.init(init_key, jnp.zeros((1, config.context_length), jnp.int32))
        opt_state = tx.init(params)
    else:
        bound = 0.5 / config.dim
        embed = jax.random.uniform(init_key, (vocab_size, config.dim), jnp.float32, -bound, bound)
        params = {"embed": embed, "out": jnp.zeros((vocab_size, config.dim), jnp.float32)}
        opt_state = {name: tx.init(table) for name, table in params.items()}
    key_data = jax.random.key_data(noise_key)
    return TrainState(jnp.zeros((), jnp.int32), params, opt_state, key_data)


def input_table(state: TrainState) -> jax.Array:
    """The learned token table (V, D): word2vec's input vectors, or next-token's tied table."""
    if "embed" in state.params and not isinstance(state.params["embed"], Mapping):
        return state.params["embed"]
    return state.params["params"]["embed"]["embedding"]


def learning_rate(config: TrainConfig, progress: jax.Array) -> jax.Array:
    """word2vec's schedule: lr at the start, min_lr at the end, linear in between."""
    progress = jnp.clip(progress, 0.0, 1.0)
    return config.lr - (config.lr - config.min_lr) * progress


# ---------------------------------------------------------------------------- the step


def _with_lr(opt_state: Any, lr: jax.Array) -> Any:
    hyperparams = {**opt_state.hyperparams, "learning_rate": lr}
    return opt_state._replace(hyperparams=hyperparams)


def _has_row_state(opt_state: Any, table_VxD: jax.Array) -> bool:
    leaves = jax.tree.leaves(opt_state)
    return any(jnp.shape(leaf) == table_VxD.shape for leaf in leaves)


def sparse_update(
    tx: optax.GradientTransformation,
    table_VxD: jax.Array,
    opt_state: Any,
    ids: jax.Array | tuple[jax.Array, ...],
    grads: jax.Array | tuple[jax.Array, ...],
) -> tuple[jax.Array, Any]:
    """Applies optax to the rows `ids` only and scatters them back into the table.

    A stateless transform (SGD) is linear in the gradient, so each occurrence's update is
    scattered with ``.at[].add`` and duplicates sum. A transform with per-row state (Adam's
    moments) needs one gradient per row: duplicates are summed onto unique rows, their state rows
    gathered, updated by optax and set back ("lazy Adam").

    Args:
      tx: the optax transform (its state holds the learning rate as a hyperparameter).
      table_VxD: the table.
      opt_state: tx's state for this table.
      ids: (N,) rows the gradient rows belong to, duplicates allowed; or a tuple of such pieces
        (SGD scatters each piece as it is, which is cheaper than concatenating them first).
      grads: (N, D) gradient rows, or a tuple of pieces matching `ids`.

    Returns:
      (new table, new optimiser state).

    Example:
      >>> tx = make_optimizer(TrainConfig(lr=0.5))
      >>> table, _ = sparse_update(tx, jnp.zeros((3, 1)), tx.init(jnp.zeros((3, 1))),
      ...                          jnp.array([2, 2]), jnp.ones((2, 1)))
      >>> table.ravel().tolist()
      [0.0, 0.0, -1.0]
    """
    ids, grads = (ids, grads) if isinstance(ids, tuple) else ((ids,), (grads,))
    if not _has_row_state(opt_state, table_VxD):
        rows = tuple(table_VxD.at[i].get(mode="promise_in_bounds") for i in ids)
        updates, opt_state = tx.update(grads, opt_state, rows)
        for ids_N, updates_NxD in zip(ids, updates, strict=True):
            table_VxD = table_VxD.at[ids_N].add(updates_NxD, mode="promise_in_bounds")
        return table_VxD, opt_state
    ids_N, grads_NxD = jnp.concatenate(ids), jnp.concatenate(grads)
    vocab_size, n = table_VxD.shape[0], ids_N.shape[0]
    # Unused slots get ID V, out of bounds: gathers fill them with zeros, scatters drop them.
    unique_N, inverse_N = jnp.unique(ids_N, size=n, fill_value=vocab_size, return_inverse=True)
    grads_NxD = jax.ops.segment_sum(grads_NxD, inverse_N.reshape(n), num_segments=n)

    def gather(leaf):
        if jnp.shape(leaf) != table_VxD.shape:
            return leaf
        return leaf.at[unique_N].get(mode="fill", fill_value=0)

    rows_state = jax.tree.map(gather, opt_state)
    updates_NxD, new_rows_state = tx.update(grads_NxD, rows_state, gather(table_VxD))

    def scatter(leaf, new_leaf):
        if jnp.shape(leaf) != table_VxD.shape:
            return new_leaf
        return leaf.at[unique_N].set(new_leaf, mode="drop")

    opt_state = jax.tree.map(scatter, opt_state, new_rows_state)
    return table_VxD.at[unique_N].add(updates_NxD, mode="drop"), opt_state


def _noise_groups(config: TrainConfig, batch_size: int) -> int:
    """G: groups of `share_negatives` consecutive pairs, the last one shorter if need be."""
    return -(-batch_size // config.share_negatives)


def _pad_to_groups(config: TrainConfig, batch: Mapping[str, jax.Array]) -> dict:
    """Pads a batch whose size is not a multiple of share_negatives with pairs that weigh 0.

    The padding repeats the last pair's IDs, so it touches no row the batch did not already
    touch (lazy Adam merges it into that row, with a zero gradient).
    """
    batch_size = batch["center_B"].shape[0]
    pad = _noise_groups(config, batch_size) * config.share_negatives - batch_size
    if pad == 0:
        return dict(batch)

    def padded(name, x):
        if not name.endswith(("_B", "_BxC")):
            return x
        widths = ((0, pad),) + ((0, 0),) * (x.ndim - 1)
        return jnp.pad(x, widths, mode="constant" if "mask" in name else "edge")

    return {name: padded(name, x) for name, x in batch.items()}


def _word2vec_sparse(config, tx, params, opt_state, batch, noise_GxK, weight_BxJ):
    """Gather the rows, closed-form row gradients, optax on those rows, scatter back."""
    embed, out = params["embed"], params["out"]
    center_B = batch["center_B"]
    dim = embed.shape[1]
    if config.objective == "skipgram":
        in_ids = batch["context_B"]
        v_BxD = embed.at[in_ids].get(mode="promise_in_bounds")
    else:
        in_ids, context_mask_BxC = batch["context_BxC"], batch["context_mask_BxC"]
        v_BxD = ob.cbow_mean(embed.at[in_ids].get(mode="promise_in_bounds"), context_mask_BxC)
    if config.share_negatives == 1:
        out_ids_BxJ = jnp.concatenate([center_B[:, None], noise_GxK], axis=1)
        # Materialise the IDs: fused into the gather, they would be recomputed for every float.
        out_ids_BxJ = jax.lax.optimization_barrier(out_ids_BxJ)
        u_BxJxD = out.at[out_ids_BxJ].get(mode="promise_in_bounds")
        loss_sum, grad_v_BxD, grad_u_BxJxD = ob.negative_sampling_rows(v_BxD, u_BxJxD, weight_BxJ)
        out_ids, grad_u = out_ids_BxJ.reshape(-1), grad_u_BxJxD.reshape(-1, dim)
    else:
        u_pos_BxD = out.at[center_B].get(mode="promise_in_bounds")
        u_neg_GxKxD = out.at[noise_GxK].get(mode="promise_in_bounds")
        loss_sum, grad_v_BxD, grad_pos, grad_neg = ob.shared_negative_sampling_rows(
            v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ
        )
        out_ids = (center_B, noise_GxK.reshape(-1))
        grad_u = (grad_pos, grad_neg.reshape(-1, dim))
    if config.objective == "cbow":  # word2vec: every context row gets the whole error
        grad_v_BxD = context_mask_BxC[:, :, None] * grad_v_BxD[:, None, :]
    grad_in = grad_v_BxD.reshape(-1, dim)
    embed, opt_embed = sparse_update(tx, embed, opt_state["embed"], in_ids.reshape(-1), grad_in)
    out, opt_out = sparse_update(tx, out, opt_state["out"], out_ids, grad_u)
    return loss_sum, {"embed": embed, "out": out}, {"embed": opt_embed, "out": opt_out}


def _word2vec_dense(config, tx, params, opt_state, batch, noise_GxK, weight_BxJ):
    """Autodiff of the loss with respect to the whole tables, optax on the whole tables."""

    def loss(params):
        if config.objective == "skipgram":
            v_BxD = params["embed"][batch["context_B"]]
        else:
            v_BxD = ob.cbow_mean(params["embed"][batch["context_BxC"]], batch["context_mask_BxC"])
        u_pos_BxD, u_neg_GxKxD = params["out"][batch["center_B"]], params["out"][noise_GxK]
        mask_B = batch["mask_B"]
        return ob.negative_sampling_loss(v_BxD, u_pos_BxD, u_neg_GxKxD, weight_BxJ[:, 1:], mask_B)

    loss_sum, grads = jax.value_and_grad(loss)(params)
    new_params, new_opt_state = {}, {}
    for name in ("embed", "out"):
        updates, new_opt_state[name] = tx.update(grads[name], opt_state[name], params[name])
        new_params[name] = optax.apply_updates(params[name], updates)
    return loss_sum, new_params, new_opt_state


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    config: TrainConfig,
    noise: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step: loss, gradient, optax update (pure; jit it or use make_train_step).

    Args:
      state: the TrainState.
      batch: arrays from jaxembed.data's batches (see BATCH_KEYS); "progress" sets the rate.
      config: the TrainConfig the state was made with.
      noise: word2vec objectives: `objectives.alias_tables` of the noise distribution.

    Returns:
      (new state, metrics): metrics hold "loss_sum" (float32, this batch), "count" (pairs or
      tokens it covers) and "lr".

    Example:
      >>> noise = alias_tables(corpus.vocab.counts ** 0.75)
      >>> state, metrics = train_step(state, batch, config=config, noise=noise)
      >>> float(metrics["loss_sum"] / metrics["count"])
      4.158...
    """
    tx = make_optimizer(config)
    lr = learning_rate(config, batch["progress"])
    if config.objective == "next-token":
        model = ob.NextTokenModel(input_table(state).shape[0], config.dim, config.context_length)
        (loss_sum, count), grads = jax.value_and_grad(ob.next_token_loss, has_aux=True)(
            state.params, model, batch
        )
        updates, opt_state = tx.update(grads, _with_lr(state.opt_state, lr), state.params)
        params = optax.apply_updates(state.params, updates)
    else:
        count = jnp.sum(batch["mask_B"])
        batch = _pad_to_groups(config, batch)
        noise_GxK = batch.get("noise_GxK")
        if noise_GxK is None:
            noise_GxK = draw_noise(config, state, noise, batch["center_B"].shape[0])
        weight_BxJ = ob.pair_weights(batch["center_B"], noise_GxK, batch["mask_B"])
        opt_state = {name: _with_lr(s, lr) for name, s in state.opt_state.items()}
        update = _word2vec_sparse if config.sparse else _word2vec_dense
        loss_sum, params, opt_state = update(
            config, tx, state.params, opt_state, batch, noise_GxK, weight_BxJ
        )
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    metrics = {"loss_sum": loss_sum, "count": jnp.asarray(count, jnp.float32), "lr": lr}
    return new_state, metrics


def draw_noise(
    config: TrainConfig,
    state: TrainState,
    noise: tuple[jax.Array, jax.Array],
    batch_size: int,
    steps: int | None = None,
) -> jax.Array:
    """The noise word IDs of the step `state.step` (or of `steps` steps from it), shape (G, K).

    Step i draws from fold_in(key, i), so the IDs do not depend on how steps are grouped.
    Drawing many steps' IDs at once costs one random-number loop instead of one per step.

    Example:
      >>> draw_noise(config, state, alias_tables(probs_V), batch_size=1024).shape
      (1024, 5)
    """
    key = jax.random.wrap_key_data(state.key)
    shape = (_noise_groups(config, batch_size), config.negative)
    if steps is None:
        return ob.sample_noise(jax.random.fold_in(key, state.step), *noise, shape)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, state.step + i))(jnp.arange(steps))
    return jax.vmap(lambda k: ob.sample_noise(k, *noise, shape))(keys)


@functools.partial(
    jax.jit, static_argnames=("config", "mesh", "split", "stacked"), donate_argnums=0
)
def _jitted_step(state, batch, noise, *, config, mesh, split, stacked):
    """train_step (or a scan of it), compiled once per (config, mesh, stacked, shapes)."""
    step = functools.partial(train_step, config=config, noise=noise)
    if mesh is not None:
        data = NamedSharding(mesh, PartitionSpec(*((None,) * stacked), "data"))
        batch = {
            k: v if k == "progress" else jax.lax.with_sharding_constraint(v, data)
            for k, v in batch.items()
        }
    if stacked and config.objective != "next-token":
        steps, batch_size = batch["center_B"].shape
        batch = {**batch, "noise_GxK": draw_noise(config, state, noise, batch_size, steps)}
    state, metrics = jax.lax.scan(step, state, batch) if stacked else step(state, batch)
    if mesh is not None:
        # Pin the new state to the layout it came in (XLA may otherwise pick another).
        vocab_size = input_table(state).shape[0]
        shardings = state_sharding(state, mesh, vocab_size, split)
        state = jax.lax.with_sharding_constraint(state, shardings)
        metrics = jax.lax.with_sharding_constraint(metrics, NamedSharding(mesh, PartitionSpec()))
    return state, metrics


def make_train_step(
    config: TrainConfig,
    noise_probs_V: Any = None,
    *,
    mesh: Mesh | None = None,
    split: str = "rows",
    stacked: bool = False,
) -> Callable[[TrainState, Mapping[str, Any]], tuple[TrainState, dict[str, jax.Array]]]:
    """`train_step` jitted for `config`, the state donated (updated in place).

    Compiled once per configuration and batch shape, however often it is made.

    Args:
      config: the TrainConfig.
      noise_probs_V: word2vec objectives: noise word weights, e.g. counts ** 0.75 (need not be
        normalised; `jaxembed.data.noise_distribution` gives them), V entries.
      mesh: if given, the state is expected sharded by `mesh.shard_state(state, mesh, V, split)`
        and batches are split by examples over its "data" axis.
      split: how the mesh's "model" devices split the tables: "rows" or "columns"
        (`jaxembed.mesh.state_sharding`).
      stacked: the batch arrays carry a leading axis of S steps, run by `jax.lax.scan` in one
        call; metrics then have that leading axis too.

    Returns:
      step(state, batch) -> (state, metrics); the state passed in must not be used again.

    Example:
      >>> step = make_train_step(config, noise_distribution(corpus.vocab.counts), stacked=True)
      >>> state, metrics = step(state, {k: np.stack([b[k] for b in batches]) for k in keys})
    """
    noise = None
    if config.objective != "next-token":
        if noise_probs_V is None:
            raise ValueError("word2vec objectives need noise_probs_V (e.g. vocab.counts ** 0.75)")
        noise = ob.alias_tables(noise_probs_V)
        if mesh is not None:
            noise = jax.device_put(noise, NamedSharding(mesh, PartitionSpec()))
    keys = BATCH_KEYS[config.objective]

    def step(state, batch):
        batch = {k: batch[k] for k in keys}
        return _jitted_step(
            state, batch, noise, config=config, mesh=mesh, split=split, stacked=stacked
        )

    return step
