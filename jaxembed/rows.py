"""Rows of a table: noise words drawn by the alias method, and optax applied to touched rows only.

Noise words come from counts ** 0.75 by Walker's alias method: two table reads per draw, exact
probabilities, no search (`alias_tables`, `sample_noise`).

`sparse_update` applies an optax transform to the rows a batch gathered and scatters them back
(one gather and one scatter per table). For SGD it equals the dense update up to float summation
order. With a transform that keeps per-row state (Adam's moments) the touched rows' state is
gathered, updated and set back: "lazy Adam", whose untouched rows neither move nor decay.
Which leaves of the optimiser state are per-row is asked of optax (`tree_map_params`), not
guessed from shapes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.tree_utils import tree_map_params

# ---------------------------------------------------------------------------- noise words


def alias_tables(probs_V: Any) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias tables for drawing IDs with probabilities `probs_V` (Vose's construction).

    Draw j uniform in [0, V) and u uniform in [0, 1): the ID is j if u < accept_V[j], else
    alias_V[j]. Each ID's total probability is exactly its share of `probs_V`.

    Args:
      probs_V: non-negative weights, not all zero (e.g. counts ** 0.75); need not sum to 1.

    Returns:
      (accept_V float32, alias_V int32).

    Example:
      >>> accept_V, alias_V = alias_tables([3.0, 1.0])
      >>> accept_V.tolist(), alias_V.tolist()
      ([1.0, 0.5], [0, 0])
    """
    probs_V = np.asarray(probs_V, np.float64)
    if probs_V.ndim != 1 or not np.all(probs_V >= 0) or not probs_V.sum() > 0:
        raise ValueError("noise weights must be a 1-D array of non-negative numbers, not all 0")
    size = len(probs_V)
    scaled_V = probs_V * (size / probs_V.sum())
    accept_V = np.ones(size)
    alias_V = np.arange(size, dtype=np.int64)
    small = [int(i) for i in np.flatnonzero(scaled_V < 1.0)]
    large = [int(i) for i in np.flatnonzero(scaled_V >= 1.0)]
    while small and large:
        s, g = small.pop(), large[-1]
        accept_V[s], alias_V[s] = scaled_V[s], g
        scaled_V[g] -= 1.0 - scaled_V[s]
        if scaled_V[g] < 1.0:
            small.append(large.pop())
    return accept_V.astype(np.float32), alias_V.astype(np.int32)


def sample_noise(
    key: jax.Array, accept_V: jax.Array, alias_V: jax.Array, shape: tuple[int, ...]
) -> jax.Array:
    """Noise word IDs of the given shape, drawn with `alias_tables`' tables.

    Example:
      >>> accept_V, alias_V = alias_tables(np.array([3.0, 1.0, 0.0]) ** 0.75)
      >>> sample_noise(jax.random.key(0), accept_V, alias_V, (4, 5)).shape
      (4, 5)
    """
    size = accept_V.shape[0]
    if size > 1 << 22:
        raise ValueError(f"sample_noise handles up to 2**22 words; got {size}")
    # One 32-bit draw r per word (random bits are a large share of a CPU step): the column is
    # r mod V, the uniform for the accept test r div V scaled to [0, 1) - at least 1024 levels.
    # Both biases are below V / 2**32.
    bits = jax.random.bits(key, shape, jnp.uint32)
    column = (bits % size).astype(jnp.int32)
    uniform = (bits // size).astype(jnp.float32) * (size / 2.0**32)
    return jnp.where(uniform < accept_V[column], column, alias_V[column])


# ---------------------------------------------------------------------------- sparse updates


def row_state_mask(tx: optax.GradientTransformation, opt_state: Any) -> Any:
    """True for the leaves of `tx`'s state of one table that hold a value per row (moments)."""
    return tree_map_params(tx, lambda _: True, opt_state, transform_non_params=lambda _: False)


def stochastic_round(x: jax.Array, key: jax.Array, dtype: Any = jnp.bfloat16) -> jax.Array:
    """float32 values rounded to bfloat16 up or down at random, up with a chance equal to the
    value's distance from the bfloat16 below it over the gap between the two: unbiased,
    E[round(x)] = x. Round-to-nearest would drop every update smaller than half the gap
    (bfloat16 keeps 8 significant bits: its gaps are 0.4-0.8% of the value), and a late word2vec
    step is such an update; rounded at random, such updates still add up on average.

    Example:
      >>> x = jnp.full((100_000,), 1.0 + 2.0**-10)  # 1/8 of the way from 1 to the next bfloat16
      >>> r = stochastic_round(x, jax.random.key(0))
      >>> sorted(set(r.astype(jnp.float32).tolist())), round(float(r.astype(jnp.float32).mean()), 4)
      ([1.0, 1.0078125], 1.001)
    """
    if jnp.dtype(dtype) != jnp.bfloat16:
        raise ValueError(f"stochastic_round rounds float32 to bfloat16; got dtype {dtype}")
    # The random bits: each entry's position hashed twice with two seeds from `key` - a tenth
    # of the cost of threefry's bits on a CPU (1.1 against 11.4 ms for 8,500 x 200 entries).
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    position = jnp.arange(x.size, dtype=jnp.uint32).reshape(x.shape)  # mod 2^32
    noise = _mix32(_mix32(position ^ seeds[0]) ^ seeds[1]) >> 16
    # bfloat16 is float32's upper 16 bits: add 16 random low bits, then cut them off. On the
    # magnitude (sign apart) that rounds up exactly when the random bits pass the dropped ones.
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    cut = (bits + noise) & jnp.uint32(0xFFFF0000)
    return jax.lax.bitcast_convert_type(cut, jnp.float32).astype(jnp.bfloat16)


def _mix32(h: jax.Array) -> jax.Array:
    """A 32-bit integer hash (uint32 -> uint32, a bijection; C. Wellons' "lowbias32")."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def sparse_update(
    tx: optax.GradientTransformation,
    table_VxD: jax.Array,
    opt_state: Any,
    ids: jax.Array | tuple[jax.Array, ...],
    grads: jax.Array | tuple[jax.Array, ...],
    key: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    """Applies optax to the rows `ids` only and scatters them back into the table.

    A stateless transform (SGD) is linear in the gradient, so each occurrence's update is
    scattered with ``.at[].add`` and duplicates sum. A transform with per-row state (Adam's
    moments) needs one gradient per row: duplicates are summed onto unique rows, their state rows
    gathered, updated by optax and set back ("lazy Adam"). A bfloat16 table is updated likewise,
    a row at a time: its rows are gathered as float32, take their summed update there and are
    set back rounded at random with `key` (`stochastic_round`).

    Args:
      tx: the optax transform (its state holds the learning rate as a hyperparameter).
      table_VxD: the table.
      opt_state: tx's state for this table.
      ids: (N,) rows the gradient rows belong to, duplicates allowed; or a tuple of such pieces
        (SGD scatters each piece as it is, which is cheaper than concatenating them first).
      grads: (N, D) gradient rows, or a tuple of pieces matching `ids`.
      key: a bfloat16 table's rounding key (float32 tables: not used).

    Returns:
      (new table, new optimiser state).

    Example:
      >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)
      >>> table, _ = sparse_update(tx, jnp.zeros((3, 1)), tx.init(jnp.zeros((3, 1))),
      ...                          jnp.array([2, 2]), jnp.ones((2, 1)))
      >>> table.ravel().tolist()
      [0.0, 0.0, -1.0]
    """
    ids, grads = (ids, grads) if isinstance(ids, tuple) else ((ids,), (grads,))
    per_row = row_state_mask(tx, opt_state)
    rounded = table_VxD.dtype != jnp.float32
    if rounded and key is None:
        raise ValueError(f"a {table_VxD.dtype} table's update needs a rounding key - pass key")
    if not any(jax.tree.leaves(per_row)) and not rounded:
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

    def gather(leaf, row):
        return leaf.at[unique_N].get(mode="fill", fill_value=0) if row else leaf

    rows_state = jax.tree.map(gather, opt_state, per_row)
    rows_NxD = gather(table_VxD, True).astype(jnp.float32)
    updates_NxD, new_rows_state = tx.update(grads_NxD, rows_state, rows_NxD)

    def scatter(leaf, new_leaf, row):
        return leaf.at[unique_N].set(new_leaf, mode="drop") if row else new_leaf

    opt_state = jax.tree.map(scatter, opt_state, new_rows_state, per_row)
    if rounded:
        new_NxD = stochastic_round(rows_NxD + updates_NxD, key, table_VxD.dtype)
        return table_VxD.at[unique_N].set(new_NxD, mode="drop"), opt_state
    return table_VxD.at[unique_N].add(updates_NxD, mode="drop"), opt_state
