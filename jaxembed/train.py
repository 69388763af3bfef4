"""Learning the table: objectives, training state and the jitted optax step, on one device or many.

Three objectives, each a pure loss function:

- ``skipgram``: word2vec's skip-gram with negative sampling. The input table ("embed") holds the
  context word's vector ``v``; the output table ("out") scores the centre word ``u_o`` against
  ``negative`` noise words ``u_k``: ``-log sigma(u_o . v) - sum_k log sigma(-u_k . v)``, as
  word2vec.c and gensim orient the pair. Noise words equal to the centre word are skipped, as
  there. "embed" starts uniform in [-0.5/D, 0.5/D), "out" at zero (word2vec's initialisation).
- ``cbow``: the same score with ``v`` the mean of the context vectors (gensim's cbow_mean=1). Like
  word2vec, every context vector receives the full error of the mean, not 1/C of it.
- ``next-token``: token + learned position vectors, a causal mean over the prefix (a bag of
  previous words) mixed by one Dense layer and added back to the token vector, scored against the
  token table itself through ``nn.Embed.attend``. It is the smallest model we found whose table
  learns meaning: the residual token vector carries bigram statistics, the prefix mean carries
  topic; the point is the table, not the model.

``train_step(state, batch) -> (state, metrics)`` is pure; ``make_train_step`` jits it with the
state donated and, optionally, scans it over a stack of batches (one dispatch for many small
steps: small batches stay in cache and are closer to word2vec's one-pair-at-a-time SGD). The
learning rate decays linearly from ``lr`` to ``min_lr`` over training (word2vec's schedule, driven
by the batch's ``progress``) and is injected into the optax transform each step.

Which rows get updated (``TrainConfig.update``):

- ``"dense"``: the gradient of the whole (V, D) table, then optax on the whole table.
- ``"sparse"``: the gradient of the gathered rows only; optax updates those rows and they are
  scattered back with ``.at[].add``. For SGD it equals the dense step (up to float summation
  order). Adam's moments are gathered for the touched rows and scattered back: "lazy Adam",
  whose untouched rows neither move nor decay their moments - not what dense Adam does.
- ``"auto"`` (default): sparse for word2vec objectives with SGD, measured 4-6x faster than dense
  at V >= 10k (see ``benchmarks/``); dense for Adam/AdamW (true Adam) and for next-token, whose
  softmax over the whole vocabulary touches every row anyway.

Scale-out uses JAX's own machinery: a ``Mesh`` with axes ("data", "model"); tables (and their
optimiser moments) are sharded by vocabulary rows over "model", batches by examples over
"data"; XLA's partitioner inserts the communication. The same code runs on one CPU, 8 TPU cores
or several hosts after ``jax.distributed.initialize``.

    >>> config = TrainConfig(objective="skipgram", dim=100)
    >>> state = init_state(config, vocab_size=len(corpus.vocab))
    >>> step = make_train_step(config, noise_probs_V)
    >>> state, metrics = step(state, batch)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

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
    share_negatives: int = 1  # consecutive pairs sharing one draw of noise words; 1 = word2vec
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


# ---------------------------------------------------------------------------- objectives


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
      u_neg_GxKxD: output vectors of K noise words for each group of B/G consecutive pairs
        (G = B: one draw per pair, as word2vec).
      neg_mask_BxK: 0 for noise words to skip (equal to the centre word), else 1.
      mask_B: 1 for real pairs, 0 for padding.

    Returns:
      The summed loss (float32 scalar).

    Example:
      >>> zeros = jnp.zeros((2, 3))
      >>> negative_sampling_loss(zeros, zeros, jnp.zeros((2, 1, 3)), jnp.ones((2, 1)), jnp.ones(2))
      Array(2.7725887, dtype=float32)  # 2 pairs x 2 terms x log 2
    """
    batch, dim = v_BxD.shape
    groups, negative, _ = u_neg_GxKxD.shape
    pos_B = jnp.sum(v_BxD * u_pos_BxD, axis=-1)
    v_GxPxD = v_BxD.reshape(groups, batch // groups, dim)
    neg_BxK = jnp.einsum("gpd,gkd->gpk", v_GxPxD, u_neg_GxKxD).reshape(batch, negative)
    neg_loss_B = jnp.sum(jax.nn.log_sigmoid(-neg_BxK) * neg_mask_BxK, axis=-1)
    return -jnp.sum((jax.nn.log_sigmoid(pos_B) + neg_loss_B) * mask_B)


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


class NextTokenModel(nn.Module):
    """Token + position vectors -> prefix mean -> Dense -> logits tied to the token table."""

    vocab_size: int  # V
    dim: int  # D
    context_length: int  # T, rows of the position table

    @nn.compact
    def __call__(self, ids_BxT: jax.Array) -> jax.Array:
        length = ids_BxT.shape[-1]
        embed = nn.Embed(self.vocab_size, self.dim, name="embed")
        positions = nn.Embed(self.context_length, self.dim, name="pos")
        x_BxTxD = embed(ids_BxT) + positions(jnp.arange(length))[None, :, :]
        # Mean of positions 0..t at position t: causal, no attention needed.
        count_1xTx1 = jnp.arange(1, length + 1, dtype=x_BxTxD.dtype)[None, :, None]
        prefix_BxTxD = jnp.cumsum(x_BxTxD, axis=1) / count_1xTx1
        h_BxTxD = x_BxTxD + nn.Dense(self.dim, name="mix")(prefix_BxTxD)
        return embed.attend(h_BxTxD)


def next_token_loss(params: Any, model: NextTokenModel, batch: Mapping[str, jax.Array]):
    """Summed cross-entropy of every next token of the real sequences, and their count."""
    logits_BxTxV = model.apply(params, batch["inputs_BxT"])
    loss_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch["targets_BxT"])
    mask_B = batch["mask_B"]
    return jnp.sum(loss_BxT * mask_B[:, None]), jnp.sum(mask_B) * loss_BxT.shape[1]


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
        model = NextTokenModel(int(vocab_size), config.dim, config.context_length)
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


def sample_noise(key: jax.Array, cdf_V: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Noise word IDs drawn from a cumulative distribution (counts ** 0.75, normalised)."""
    uniform = jax.random.uniform(key, shape, jnp.float32)
    ids = jnp.searchsorted(cdf_V, uniform * cdf_V[-1], side="right")
    return jnp.minimum(ids, cdf_V.shape[0] - 1).astype(jnp.int32)


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
    ids_N: jax.Array,
    grads_NxD: jax.Array,
) -> tuple[jax.Array, Any]:
    """Applies optax to the rows `ids_N` only and scatters them back into the table.

    A stateless transform (SGD) is linear in the gradient, so each occurrence's update is
    scattered with ``.at[].add`` and duplicates sum. A transform with per-row state (Adam's
    moments) needs one gradient per row: duplicates are summed onto unique rows, their state rows
    gathered, updated by optax and set back ("lazy Adam").

    Args:
      tx: the optax transform (its state holds the learning rate as a hyperparameter).
      table_VxD: the table.
      opt_state: tx's state for this table.
      ids_N: the rows the gradient belongs to (duplicates allowed).
      grads_NxD: one gradient row per entry of ids_N.

    Returns:
      (new table, new optimiser state).

    Example:
      >>> tx = make_optimizer(TrainConfig(lr=0.5))
      >>> table, _ = sparse_update(tx, jnp.zeros((3, 1)), tx.init(jnp.zeros((3, 1))),
      ...                          jnp.array([2, 2]), jnp.ones((2, 1)))
      >>> table.ravel().tolist()
      [0.0, 0.0, -1.0]
    """
    if not _has_row_state(opt_state, table_VxD):
        rows_NxD = table_VxD.at[ids_N].get(mode="promise_in_bounds")
        updates_NxD, opt_state = tx.update(grads_NxD, opt_state, rows_NxD)
        return table_VxD.at[ids_N].add(updates_NxD, mode="promise_in_bounds"), opt_state
    vocab_size = table_VxD.shape[0]
    n = ids_N.shape[0]
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


def _word2vec_rows(config: TrainConfig, batch: Mapping[str, jax.Array], noise_ids: jax.Array):
    """(input IDs, output IDs, loss of the gathered rows) for skip-gram or CBOW."""
    center_B, mask_B = batch["center_B"], batch["mask_B"]
    batch_size = center_B.shape[0]
    groups = noise_ids.shape[0]
    neg_mask_BxK = (
        (noise_ids.reshape(groups, 1, -1) != center_B.reshape(groups, -1, 1))
        .astype(jnp.float32)
        .reshape(batch_size, -1)
    )
    out_ids = jnp.concatenate([center_B, noise_ids.reshape(-1)])

    def split(u_NxD):
        return u_NxD[:batch_size], u_NxD[batch_size:].reshape(groups, config.negative, -1)

    if config.objective == "skipgram":
        in_ids = batch["context_B"]

        def loss(v_BxD, u_NxD):
            return negative_sampling_loss(v_BxD, *split(u_NxD), neg_mask_BxK, mask_B)

    else:
        context_BxC = batch["context_BxC"]
        in_ids = context_BxC.reshape(-1)

        def loss(v_NxD, u_NxD):
            v_BxCxD = v_NxD.reshape(*context_BxC.shape, -1)
            v_BxD = cbow_mean(v_BxCxD, batch["context_mask_BxC"])
            return negative_sampling_loss(v_BxD, *split(u_NxD), neg_mask_BxK, mask_B)

    return in_ids, out_ids, loss


def _noise_groups(config: TrainConfig, batch_size: int) -> int:
    if batch_size % config.share_negatives:
        raise ValueError(
            f"batch size {batch_size} must be a multiple of share_negatives "
            f"{config.share_negatives} - change one of them"
        )
    return batch_size // config.share_negatives


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    config: TrainConfig,
    noise_cdf_V: jax.Array | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step: loss, gradient, optax update (pure; jit it or use make_train_step).

    Args:
      state: the TrainState.
      batch: arrays from jaxembed.data's batches (see BATCH_KEYS); "progress" sets the rate.
      config: the TrainConfig the state was made with.
      noise_cdf_V: word2vec objectives: the cumulative noise distribution (counts ** 0.75).

    Returns:
      (new state, metrics): metrics hold "loss_sum" (float32, this batch), "count" (pairs or
      tokens it covers) and "lr".

    Example:
      >>> state, metrics = train_step(state, batch, config=config, noise_cdf_V=cdf_V)
      >>> float(metrics["loss_sum"] / metrics["count"])
      4.158...
    """
    tx = make_optimizer(config)
    lr = learning_rate(config, batch["progress"])
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    if config.objective == "next-token":
        model = NextTokenModel(input_table(state).shape[0], config.dim, config.context_length)
        (loss_sum, count), grads = jax.value_and_grad(next_token_loss, has_aux=True)(
            state.params, model, batch
        )
        updates, opt_state = tx.update(grads, _with_lr(state.opt_state, lr), state.params)
        params = optax.apply_updates(state.params, updates)
    else:
        batch_size = batch["center_B"].shape[0]
        groups = _noise_groups(config, batch_size)
        noise_ids = sample_noise(key, noise_cdf_V, (groups, config.negative))
        in_ids, out_ids, rows_loss = _word2vec_rows(config, batch, noise_ids)
        count = jnp.sum(batch["mask_B"])
        opt_state = {name: _with_lr(s, lr) for name, s in state.opt_state.items()}
        embed, out = state.params["embed"], state.params["out"]
        if config.sparse:
            v_NxD = embed.at[in_ids].get(mode="promise_in_bounds")
            u_NxD = out.at[out_ids].get(mode="promise_in_bounds")
            loss_sum, (grad_v, grad_u) = jax.value_and_grad(rows_loss, argnums=(0, 1))(v_NxD, u_NxD)
            embed, opt_state["embed"] = sparse_update(tx, embed, opt_state["embed"], in_ids, grad_v)
            out, opt_state["out"] = sparse_update(tx, out, opt_state["out"], out_ids, grad_u)
            params = {"embed": embed, "out": out}
        else:

            def dense_loss(params):
                return rows_loss(params["embed"][in_ids], params["out"][out_ids])

            loss_sum, grads = jax.value_and_grad(dense_loss)(state.params)
            params, opt_state = {}, dict(opt_state)
            for name in ("embed", "out"):
                updates, opt_state[name] = tx.update(
                    grads[name], opt_state[name], state.params[name]
                )
                params[name] = optax.apply_updates(state.params[name], updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    metrics = {"loss_sum": loss_sum, "count": jnp.asarray(count, jnp.float32), "lr": lr}
    return new_state, metrics


@functools.partial(jax.jit, static_argnames=("config", "mesh", "stacked"), donate_argnums=0)
def _jitted_step(state, batch, noise_cdf_V, *, config, mesh, stacked):
    """train_step (or a scan of it), compiled once per (config, mesh, stacked, shapes)."""
    step = functools.partial(train_step, config=config, noise_cdf_V=noise_cdf_V)
    if mesh is not None:
        data = NamedSharding(mesh, PartitionSpec(*((None,) * stacked), "data"))
        batch = {
            k: v if k == "progress" else jax.lax.with_sharding_constraint(v, data)
            for k, v in batch.items()
        }
    state, metrics = jax.lax.scan(step, state, batch) if stacked else step(state, batch)
    if mesh is not None:
        # Pin the new state to the layout it came in (XLA may otherwise pick another).
        vocab_size = input_table(state).shape[0]
        state = jax.lax.with_sharding_constraint(state, state_sharding(state, mesh, vocab_size))
        metrics = jax.lax.with_sharding_constraint(metrics, NamedSharding(mesh, PartitionSpec()))
    return state, metrics


def make_train_step(
    config: TrainConfig,
    noise_probs_V: Any = None,
    *,
    mesh: Mesh | None = None,
    stacked: bool = False,
) -> Callable[[TrainState, Mapping[str, Any]], tuple[TrainState, dict[str, jax.Array]]]:
    """`train_step` jitted for `config`, the state donated (updated in place).

    Args:
      config: the TrainConfig.
      noise_probs_V: word2vec objectives: the noise distribution (e.g. counts ** 0.75; need not
        be normalised), V entries.
      mesh: if given, the state is expected sharded by `shard_state(state, mesh)` and batches
        are sharded by examples over its "data" axis.
      stacked: the batch arrays carry a leading axis of S steps, run by `jax.lax.scan` in one
        call; metrics then have that leading axis too.

    Returns:
      step(state, batch) -> (state, metrics); the state passed in must not be used again.

    Example:
      >>> step = make_train_step(config, corpus.vocab.counts ** 0.75, stacked=True)
      >>> state, metrics = step(state, stack_batches(batches[:16]))
    """
    cdf_V = None
    if config.objective != "next-token":
        if noise_probs_V is None:
            raise ValueError("word2vec objectives need noise_probs_V (e.g. vocab.counts ** 0.75)")
        probs_V = np.asarray(noise_probs_V, np.float64)
        if probs_V.ndim != 1 or not np.all(probs_V >= 0) or not probs_V.sum() > 0:
            raise ValueError("noise_probs_V must be a 1-D array of non-negative weights, not all 0")
        cdf_V = np.cumsum(probs_V / probs_V.sum()).astype(np.float32)
        if mesh is not None:
            cdf_V = jax.device_put(cdf_V, NamedSharding(mesh, PartitionSpec()))
    keys = BATCH_KEYS[config.objective]

    def step(state, batch):
        batch = {k: batch[k] for k in keys}
        return _jitted_step(state, batch, cdf_V, config=config, mesh=mesh, stacked=stacked)

    return step


# ---------------------------------------------------------------------------- sharding


def make_mesh(data: int | None = None, model: int = 1, devices=None) -> Mesh:
    """A ("data", "model") mesh over all devices (of all processes): data x model = #devices.

    Args:
      data: devices splitting each batch; None for all devices / model.
      model: devices splitting the tables' vocabulary rows.
      devices: the devices (default jax.devices(), every process's).

    Example:
      >>> make_mesh(model=2).shape  # on 8 devices
      {'data': 4, 'model': 2}
    """
    devices = jax.devices() if devices is None else list(devices)
    if model < 1 or len(devices) % model:
        raise ValueError(f"model={model} must divide the {len(devices)} devices")
    data = len(devices) // model if data is None else data
    if data * model != len(devices):
        raise ValueError(
            f"data x model = {data} x {model} must equal the {len(devices)} devices - "
            f"use data={len(devices) // model}"
        )
    grid = np.asarray(devices).reshape(data, model)
    return Mesh(grid, ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


def state_sharding(state: TrainState, mesh: Mesh, vocab_size: int) -> Any:
    """NamedShardings for a state: (V, D) arrays by rows over "model", the rest replicated."""

    def spec(leaf):
        if jnp.ndim(leaf) == 2 and jnp.shape(leaf)[0] == vocab_size:
            return NamedSharding(mesh, PartitionSpec("model", None))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(spec, state)


def shard_state(state: TrainState, mesh: Mesh, vocab_size: int) -> TrainState:
    """Places a host-identical state onto `mesh` (works across processes: each fills its part).

    Every process must hold the same state (same seed, or the same checkpoint).

    Example:
      >>> state = shard_state(init_state(config, V), make_mesh(), V)
    """
    shardings = state_sharding(state, mesh, vocab_size)

    def put(leaf, sharding):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, state, shardings)


def shard_batch(batch: Mapping[str, Any], mesh: Mesh, stacked: bool = False) -> dict:
    """Places a host batch (identical on every process) onto `mesh`, split over "data"."""
    data_axis = (None,) * stacked + ("data",)
    out = {}
    for name, value in batch.items():
        if not isinstance(value, np.ndarray | np.generic | jax.Array):
            continue  # host-side counters such as "words"
        host = np.asarray(value)
        spec = PartitionSpec() if host.ndim == stacked else PartitionSpec(*data_axis)
        if host.ndim > stacked and host.shape[stacked] % mesh.shape["data"]:
            raise ValueError(
                f"batch size {host.shape[stacked]} must be a multiple of the mesh's "
                f"{mesh.shape['data']} data devices - change --batch-size"
            )
        sharding = NamedSharding(mesh, spec)
        out[name] = jax.make_array_from_callback(host.shape, sharding, lambda i, h=host: h[i])
    return out


def to_host(tree: Any) -> Any:
    """numpy copies of (possibly sharded, multi-process) arrays: each process gets all of it."""

    def fetch(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(fetch, tree)
