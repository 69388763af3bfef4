"""Positions: the model's input is token embedding + position embedding.

A token's vector is the same wherever the token stands, so a model that only sees token vectors
cannot tell "dog bites man" from "man bites dog". Adding a vector per position fixes that:

- learned absolute positions (GPT-2): a second table, ``pos_table_LxD``, one row per position up
  to ``max_length``, trained like the token table (``init_positions``);
- sinusoidal positions (Vaswani et al. 2017, "Attention is all you need"): a fixed table of sines
  and cosines of geometrically spaced frequencies (``sinusoidal_positions``).

``input_embeddings`` adds either kind to the token vectors. ``sliding_windows`` cuts a long ID
sequence into fixed-length inputs with their next-token targets (as the GPTDatasetV1 of
"Build a Large Language Model (From Scratch)" does), and ``iter_batches`` serves them in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed.checks import positive_int
from jaxembed.embed import init_table, lookup


def init_positions(
    key: jax.Array,
    max_length: int,
    dim: int,
    dtype: Any = jnp.float32,
    stddev: float | None = None,
) -> jax.Array:
    """Draws a learned absolute position table: one random row per position, as GPT-2 has.

    It is an embedding table over positions 0 .. max_length - 1, drawn as ``init_table`` draws
    token tables (``stddev`` defaults to ``1 / sqrt(dim)``, as ``nn.Embed``'s; GPT-2's code used
    0.01 for positions, Hugging Face's port 0.02).

    Args:
      key: a ``jax.random`` key.
      max_length: L, the longest sequence the model will see (GPT-2: 1,024).
      dim: D, which must equal the token table's dimension.
      dtype: the table's dtype.
      stddev: the standard deviation; ``None`` for ``1 / sqrt(dim)``.

    Returns:
      pos_table_LxD: a (max_length, dim) array.

    Example:
      >>> init_positions(jax.random.key(0), max_length=4, dim=3).shape
      (4, 3)
    """
    max_length = positive_int("max_length", max_length)  # named here, not as vocab_size
    return init_table(key, max_length, dim, dtype=dtype, stddev=stddev)


def sinusoidal_positions(
    max_length: int, dim: int, base: float = 10_000.0, dtype: Any = jnp.float32
) -> jax.Array:
    """The fixed sinusoidal position table of Vaswani et al.

    ``P[p, 2i] = sin(p / base**(2i / dim))`` and ``P[p, 2i + 1] = cos(p / base**(2i / dim))``:
    column pairs share a frequency, sine first. An odd ``dim`` is allowed: its last column is the
    sine of the last pair, whose cosine partner is left out. Computed in float64, then cast.

    Args:
      max_length: L, the number of positions.
      dim: D, the number of columns.
      base: the longest wavelength is ``2 * pi * base``.
      dtype: the table's dtype.

    Returns:
      pos_table_LxD: a (max_length, dim) array with values in [-1, 1].

    Example:
      >>> sinusoidal_positions(max_length=3, dim=4)[0]  # position 0: sin 0, cos 0, ...
      Array([0., 1., 0., 1.], dtype=float32)
    """
    max_length = positive_int("max_length", max_length)
    dim = positive_int("dim", dim)
    if not base > 0:
        raise ValueError(f"base must be positive; got {base!r}")
    column_D = np.arange(dim)
    pair_D = column_D - column_D % 2  # 2i for both columns of pair i
    inverse_wavelength_D = float(base) ** (-pair_D / dim)
    angle_LxD = np.arange(max_length, dtype=np.float64)[:, None] * inverse_wavelength_D[None, :]
    table_LxD = np.where(column_D[None, :] % 2 == 0, np.sin(angle_LxD), np.cos(angle_LxD))
    return jnp.asarray(table_LxD, dtype=dtype)


def input_embeddings(
    token_table_VxD: jax.Array, pos_table_LxD: jax.Array, ids_BxT: Any
) -> jax.Array:
    """Token vectors plus the vectors of their positions 0 .. T - 1: the model's input.

    Token IDs are checked as ``lookup`` checks them. The result has the dtype the two tables
    promote to.

    Args:
      token_table_VxD: the (V, D) token table.
      pos_table_LxD: the (L, D) position table (learned or sinusoidal), L >= T.
      ids_BxT: integer IDs whose last axis is the position: (T,) or (B, T).

    Returns:
      x_BxTxD: ``ids.shape + (D,)``.

    Example:
      >>> x_BxTxD = input_embeddings(jnp.ones((6, 3)), sinusoidal_positions(4, 3), [[2, 3, 5, 1]])
      >>> x_BxTxD.shape
      (1, 4, 3)
    """
    ids_shape = np.shape(ids_BxT)
    if len(ids_shape) == 0:
        raise ValueError(
            "ids_BxT needs a sequence axis: got a scalar ID - pass [id] for a sequence of one"
        )
    if np.ndim(pos_table_LxD) != 2:
        raise ValueError(
            f"pos_table_LxD must be 2-D (max_length, dim); got shape {np.shape(pos_table_LxD)}"
        )
    length = ids_shape[-1]
    max_length, pos_dim = np.shape(pos_table_LxD)
    if length > max_length:
        raise ValueError(
            f"sequences of {length} tokens are longer than the position table's max_length "
            f"{max_length} - cut them to {max_length} tokens or build a table with "
            f"max_length >= {length}"
        )
    token_dim = np.shape(token_table_VxD)[-1]
    if pos_dim != token_dim:
        raise ValueError(
            f"the position table has dim {pos_dim} but the token table has dim {token_dim} - "
            "build both with the same dim"
        )
    tokens_BxTxD = lookup(token_table_VxD, ids_BxT)
    # Leading 1s broadcast the positions over the batch axes explicitly (rank promotion stays off).
    pos_1xTxD = jnp.reshape(pos_table_LxD[:length], (1,) * (len(ids_shape) - 1) + (length, pos_dim))
    return tokens_BxTxD + pos_1xTxD


def sliding_windows(ids_N: Any, max_length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cuts one long ID sequence into next-token training pairs.

    Window b starts at ``b * stride``: ``inputs[b] = ids[s : s + max_length]`` and
    ``targets[b] = ids[s + 1 : s + max_length + 1]``, the same tokens shifted by one, so
    ``targets[b, t]`` is the token that follows ``inputs[b, t]``. Windows start while a full
    target fits, as GPTDatasetV1 does; a ``stride`` below ``max_length`` makes windows overlap,
    above it skips tokens.

    Args:
      ids_N: a 1-D sequence of integer IDs (list, numpy or JAX array).
      max_length: T, the tokens per window.
      stride: the step between window starts.

    Returns:
      ``(inputs_BxT, targets_BxT)``: int32 numpy arrays, B = (N - T - 1) // stride + 1.

    Example:
      >>> inputs_BxT, targets_BxT = sliding_windows(np.arange(10), max_length=4, stride=4)
      >>> inputs_BxT.tolist(), targets_BxT.tolist()
      ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
    """
    max_length = positive_int("max_length", max_length)
    stride = positive_int("stride", stride)
    ids_N = np.asarray(ids_N)
    if ids_N.ndim != 1:
        raise ValueError(
            f"ids_N must be 1-D, one long sequence; got shape {ids_N.shape} - concatenate the "
            "documents first (e.g. joined by <|endoftext|>)"
        )
    if ids_N.size and not np.issubdtype(ids_N.dtype, np.integer):
        raise TypeError(f"ids_N must be integers; got dtype {ids_N.dtype} - cast to int32")
    if ids_N.size < max_length + 1:
        raise ValueError(
            f"a window of max_length {max_length} needs {max_length + 1} IDs (its inputs and "
            f"the next-token target after them); got {ids_N.size} - use a longer text or a "
            "smaller max_length"
        )
    if ids_N.size and (
        ids_N.min() < np.iinfo(np.int32).min or ids_N.max() > np.iinfo(np.int32).max
    ):
        raise ValueError("ids_N do not fit in int32 - no vocabulary is that large")
    windows_BxT1 = np.lib.stride_tricks.sliding_window_view(ids_N, max_length + 1)[::stride]
    inputs_BxT = np.ascontiguousarray(windows_BxT1[:, :-1], dtype=np.int32)
    targets_BxT = np.ascontiguousarray(windows_BxT1[:, 1:], dtype=np.int32)
    return inputs_BxT, targets_BxT


def iter_batches(
    inputs_BxT: np.ndarray,
    targets_BxT: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields one epoch of ``(inputs, targets)`` batches from ``sliding_windows``'s arrays.

    Args:
      inputs_BxT: the input windows.
      targets_BxT: their targets, the same shape.
      batch_size: windows per batch.
      shuffle: visit the windows in a random order drawn from ``seed`` (pass a new seed per
        epoch for a new order).
      seed: the seed of the order; the same seed gives the same batches.
      drop_last: skip a last batch smaller than ``batch_size``, so every batch has one shape
        (``jit`` then compiles once).

    Yields:
      ``(inputs_bxT, targets_bxT)`` numpy arrays, b = batch_size (or fewer for the last one).

    Example:
      >>> inputs_BxT, targets_BxT = sliding_windows(np.arange(10), max_length=2, stride=2)
      >>> [x.tolist() for x, _ in iter_batches(inputs_BxT, targets_BxT, batch_size=2)]
      [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    """
    batch_size = positive_int("batch_size", batch_size)
    if np.shape(inputs_BxT) != np.shape(targets_BxT) or np.ndim(inputs_BxT) != 2:
        raise ValueError(
            "inputs_BxT and targets_BxT must be 2-D and of one shape; got "
            f"{np.shape(inputs_BxT)} and {np.shape(targets_BxT)}"
        )
    num_windows = len(inputs_BxT)
    if drop_last and batch_size > num_windows:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {num_windows} windows, so drop_last "
            "leaves no batch - lower batch_size or the stride, or use more text"
        )
    order_B = np.random.default_rng(seed).permutation(num_windows) if shuffle else None
    stop = num_windows - num_windows % batch_size if drop_last else num_windows
    for start in range(0, stop, batch_size):
        rows = (
            slice(start, start + batch_size)
            if order_B is None
            else order_B[start : start + batch_size]
        )
        yield inputs_BxT[rows], targets_BxT[rows]
