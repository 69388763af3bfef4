"""Token IDs -> vectors (the third arrow of the pipeline): reading rows of an embedding table.

An embedding table ``table_VxD`` has one row per token of the vocabulary (V rows) and one column
per vector dimension (D). Looking up ID ``i`` returns row ``i``. The same answer comes from three
other routes, which this module offers so that tests and lectures can compare them:

- ``lookup``: a gather (``jnp.take``), the route to use; cost O(N * D) for N IDs.
- ``one_hot_lookup``: ``one_hot(ids, V) @ table``; cost O(N * V * D), nearly all of it spent
  multiplying zeros.
- ``dense_lookup``: the one-hot vectors through a bias-free ``flax.linen.Dense`` whose kernel is
  the table: an embedding is a linear layer on one-hot inputs.
- ``embed_module``: ``flax.linen.Embed`` holding the table; ``attend`` is its transpose, the tied
  output projection (logits = x @ table.T).

ID checks. ``jnp.take`` (and so ``nn.Embed``) does not fail on a bad ID. Public functions here
check IDs that are concrete (Python ints, lists, numpy arrays, ``jax.Array`` values outside
``jit``): a float ID raises ``TypeError``, an ID outside [0, V) raises ``ValueError`` naming the
ID, its position and the valid range (worded by ``jaxembed.checks.check_ids``). Concrete IDs
closed over by a traced function are checked too. The check is cheap: numpy IDs are reduced with
numpy; a ``jax.Array`` is reduced to its min and max by one small jitted call on its own device,
so two scalars, not the IDs, cross to the host (the IDs are fetched only to locate a bad one for
the message). Measured on CPU for 8 x 1,024 IDs: about 50 us, against about 600 us for the
eager gather from a 50,257 x 64 table.

Under ``jax.jit`` the IDs are tracers with no values, so nothing can be refused at trace time.
What then happens, measured with jax 0.10.2 and asserted in ``tests/test_embed.py``:

- ``lookup`` and ``nn.Embed`` (``jnp.take``, mode "fill"): an ID >= V gives a row of NaN; an ID
  in [-V, 0) wraps around to row V + ID, silently; an ID < -V gives NaN. In the gradient with
  respect to the table, NaN-row IDs contribute nothing and wrapped IDs feed row V + ID.
- ``one_hot_lookup`` and ``dense_lookup``: any ID outside [0, V), negative ones too, has an
  all-zero one-hot vector and so gives a zero vector.
- Plain indexing ``table[ids]`` (not used here) clamps: ID >= V reads row V - 1 and negative IDs
  wrap, then clamp to row 0. That is the quietest failure of all, which is why ``lookup`` uses
  ``jnp.take``: NaN at least shows up in the loss.

To check IDs inside ``jit``, use ``checked_lookup``: it carries the check through
``jax.experimental.checkify`` and returns ``(err, vectors)``; ``err.throw()`` raises a
``ValueError`` subclass with the same message.

IDs at or beyond 2**31: JAX computes in int32 (unless ``jax_enable_x64`` is set), so int64
NumPy IDs are cast before use, 2**32 + 1 becoming 1. Outside ``jit``, ``lookup`` and
``checked_lookup`` check such IDs before the cast and refuse them. ``jax.jit(lookup)(table,
ids)`` casts its arguments before any code of ours runs, so there a too-large ID silently reads
another row: check IDs on the host (``jaxembed.checks.check_ids``) before jitting with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxembed.checks import check_ids, positive_int

# one_hot @ table must reproduce the table's rows bit for bit; TPUs otherwise multiply float32
# in a single bfloat16 pass, which rounds every row.
_EXACT = jax.lax.Precision.HIGHEST


def init_table(
    key: jax.Array,
    vocab_size: int,
    dim: int,
    dtype: Any = jnp.float32,
    stddev: float | None = None,
) -> jax.Array:
    """Draws a random (vocab_size, dim) embedding table from N(0, stddev^2).

    The default ``stddev`` is ``1 / sqrt(dim)``, the same distribution as ``nn.Embed``'s default
    initialiser (``variance_scaling(1.0, "fan_in", "normal", out_axis=0)``), so a vector's
    expected squared norm is 1 whatever ``dim``. GPT-2 used ``stddev=0.02``.

    Args:
      key: a ``jax.random`` key.
      vocab_size: V, the number of rows (tokens).
      dim: D, the number of columns (vector dimensions).
      dtype: the table's dtype.
      stddev: the standard deviation; ``None`` for ``1 / sqrt(dim)``.

    Returns:
      table_VxD: a (vocab_size, dim) array of ``dtype``.

    Example:
      >>> table_VxD = init_table(jax.random.key(0), vocab_size=6, dim=3)
      >>> table_VxD.shape
      (6, 3)
    """
    vocab_size = positive_int("vocab_size", vocab_size)
    dim = positive_int("dim", dim)
    if stddev is None:
        stddev = 1.0 / math.sqrt(dim)
    elif not stddev > 0:
        raise ValueError(f"stddev must be positive; got {stddev!r}")
    return jax.random.normal(key, (vocab_size, dim), dtype) * jnp.asarray(stddev, dtype)


def count_params(variables: Any) -> int:
    """Counts the numbers in a pytree of arrays (or of ``jax.ShapeDtypeStruct``).

    With ``jax.eval_shape`` this sizes a model without allocating it.

    Args:
      variables: any pytree whose leaves have a ``shape``.

    Returns:
      The total number of elements.

    Example:
      >>> shapes = jax.eval_shape(nn.Embed(50_257, 768).init, jax.random.key(0), jnp.zeros(1, int))
      >>> count_params(shapes)
      38597376
    """
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variables))


def _check_table(table_VxD: Any) -> None:
    shape = np.shape(table_VxD)
    if len(shape) != 2:
        raise ValueError(f"table_VxD must be 2-D (vocab_size, dim); got shape {shape}")
    if shape[0] == 0:
        raise ValueError("table_VxD has no rows: the vocabulary is empty")


def _check_dtype(ids: Any) -> Any:
    """Returns ``ids`` as an array (lists become numpy), refusing non-integer dtypes."""
    if not isinstance(ids, jax.Array | np.ndarray):
        ids = np.asarray(ids)
        if ids.size == 0:  # [] has no dtype of its own; numpy would call it float64
            ids = ids.astype(np.int32)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(
            f"ids must be integers; got dtype {ids.dtype} - cast them first, e.g. "
            "ids.astype(jnp.int32)"
        )
    return ids


@jax.jit
def _min_max(ids: jax.Array) -> jax.Array:
    """[min, max] of the IDs in one dispatch, computed where the IDs live."""
    return jnp.stack([jnp.min(ids), jnp.max(ids)])


def _ids_in_range(ids: Any, vocab_size: int) -> Any:
    """Returns ``ids`` as an array; refuses non-integer IDs and concrete IDs outside [0, V).

    Tracers pass unchecked. A ``jax.Array`` is reduced to its min and max on its own device, so
    two scalars, not the IDs, reach the host; only a failing check fetches the IDs, and
    ``jaxembed.checks.check_ids`` then words the error.
    """
    ids = _check_dtype(ids)
    if isinstance(ids, jax.core.Tracer) or ids.size == 0:
        return ids
    if isinstance(ids, jax.Array):
        # Eager even when concrete IDs are closed over inside a traced function.
        with jax.ensure_compile_time_eval():
            low, high = np.asarray(_min_max(ids)).tolist()
    else:
        low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        check_ids(np.asarray(ids), vocab_size)
    return ids


def lookup(table_VxD: jax.Array, ids: Any) -> jax.Array:
    """Returns the table's rows for ``ids`` of any shape: (...) -> (..., D).

    Concrete IDs are checked; under ``jit`` they cannot be (the module docstring says what bad IDs
    then give, and ``checked_lookup`` checks them at run time).

    Args:
      table_VxD: the (V, D) embedding table.
      ids: integer IDs in [0, V): a scalar, (T,), (B, T), ...

    Returns:
      vectors of shape ``ids.shape + (D,)`` and the table's dtype.

    Example:
      >>> table_VxD = jnp.arange(18.0).reshape(6, 3)
      >>> lookup(table_VxD, [2, 3, 5, 1])[1]  # the vector of ID 3 is row 3
      Array([ 9., 10., 11.], dtype=float32)
    """
    _check_table(table_VxD)
    ids = _ids_in_range(ids, np.shape(table_VxD)[0])
    return jnp.take(table_VxD, ids, axis=0, mode="fill")


def one_hot_lookup(table_VxD: jax.Array, ids: Any) -> jax.Array:
    """``one_hot(ids, V) @ table``: the same vectors as ``lookup``, through a matrix product.

    The product is exact (each output sums one ``1 * x`` and zeros), float32 and bfloat16 alike,
    provided the table holds no inf or NaN (``0 * inf`` is NaN). It is run at the highest matmul
    precision so that TPUs do not round float32 tables to bfloat16.

    Args:
      table_VxD: the (V, D) embedding table.
      ids: integer IDs in [0, V) of any shape.

    Returns:
      vectors of shape ``ids.shape + (D,)`` and the table's dtype.

    Example:
      >>> table_VxD = jnp.arange(20.0).reshape(4, 5)
      >>> bool((one_hot_lookup(table_VxD, [2, 3, 1]) == lookup(table_VxD, [2, 3, 1])).all())
      True
    """
    _check_table(table_VxD)
    vocab_size = np.shape(table_VxD)[0]
    ids = _ids_in_range(ids, vocab_size)
    one_hot_NxV = jax.nn.one_hot(ids, vocab_size, dtype=table_VxD.dtype)
    return jnp.dot(one_hot_NxV, table_VxD, precision=_EXACT)


def dense_lookup(table_VxD: jax.Array, ids: Any) -> jax.Array:
    """One-hot IDs through ``nn.Dense(features=D, use_bias=False)`` whose kernel is the table.

    An embedding layer is a linear layer without bias applied to one-hot inputs; this computes
    exactly the same vectors as ``lookup`` (see ``one_hot_lookup`` for why it is exact).

    Args:
      table_VxD: the (V, D) embedding table, used as the Dense kernel (inputs V, outputs D).
      ids: integer IDs in [0, V) of any shape.

    Returns:
      vectors of shape ``ids.shape + (D,)``.

    Example:
      >>> table_VxD = jnp.arange(20.0).reshape(4, 5)
      >>> dense_lookup(table_VxD, [2, 3, 1]).shape
      (3, 5)
    """
    _check_table(table_VxD)
    vocab_size, dim = np.shape(table_VxD)
    ids = _ids_in_range(ids, vocab_size)
    layer = nn.Dense(features=dim, use_bias=False, precision=_EXACT)
    one_hot_NxV = jax.nn.one_hot(ids, vocab_size, dtype=table_VxD.dtype)
    return layer.apply({"params": {"kernel": table_VxD}}, one_hot_NxV)


def embed_module(table_VxD: jax.Array) -> tuple[nn.Embed, Mapping[str, Any]]:
    """Wraps a table as ``flax.linen.Embed``: returns ``(module, variables)``.

    ``module.apply(variables, ids)`` looks up, ``module.apply(variables, x, method="attend")``
    projects back onto the vocabulary. ``nn.Embed`` does not check IDs: call
    ``jaxembed.checks.check_ids`` first (or use ``lookup``), or see the module docstring for what bad IDs give.

    Args:
      table_VxD: the (V, D) embedding table; ``nn.Embed`` names it ``params/embedding``.

    Returns:
      The module and its variables ``{"params": {"embedding": table_VxD}}``.

    Example:
      >>> module, variables = embed_module(jnp.arange(18.0).reshape(6, 3))
      >>> module.apply(variables, jnp.array([2, 3, 5, 1])).shape
      (4, 3)
    """
    _check_table(table_VxD)
    vocab_size, dim = np.shape(table_VxD)
    module = nn.Embed(num_embeddings=vocab_size, features=dim, param_dtype=table_VxD.dtype)
    return module, {"params": {"embedding": table_VxD}}


def nnx_embed(table_VxD: jax.Array) -> Any:
    """A learned table as ``flax.nnx.Embed``, the module flax recommends for new code.

    ``module(ids)`` looks up, ``module.attend(x)`` projects back onto the vocabulary; the table
    is the module's ``embedding`` parameter (trainable with ``nnx.Optimizer`` like any other).
    Like ``nn.Embed``, it does not check IDs.

    Args:
      table_VxD: the (V, D) table, e.g. ``np.load("w2v/table.npy")`` of a GPT-2 run, whose row i
        is GPT-2 token i.

    Returns:
      The ``nnx.Embed`` module holding (a copy of) the table.

    Example:
      >>> module = nnx_embed(jnp.arange(18.0).reshape(6, 3))
      >>> module(jnp.array([2, 3, 5, 1])).shape
      (4, 3)
    """
    from flax import nnx

    _check_table(table_VxD)
    table_VxD = jnp.asarray(table_VxD)
    vocab_size, dim = table_VxD.shape
    module = nnx.Embed(
        vocab_size, dim, dtype=table_VxD.dtype, param_dtype=table_VxD.dtype, rngs=nnx.Rngs(0)
    )
    module.embedding = nnx.Param(table_VxD)
    return module


def attend(table_VxD: jax.Array, x_BxTxD: jax.Array) -> jax.Array:
    """The tied output projection: ``x @ table.T``, one logit per vocabulary row.

    The same computation as ``nn.Embed.attend`` (default matmul precision, dtypes promoted
    together): a model whose output layer shares the input table scores token ``v`` by the dot
    product of its hidden vector with row ``v``.

    Args:
      table_VxD: the (V, D) embedding table.
      x_BxTxD: vectors of any leading shape whose last axis has size D.

    Returns:
      logits of shape ``x.shape[:-1] + (V,)``.

    Example:
      >>> table_VxD = jnp.eye(3)
      >>> attend(table_VxD, jnp.array([[0.0, 2.0, 0.0]]))
      Array([[0., 2., 0.]], dtype=float32)
    """
    _check_table(table_VxD)
    dim = np.shape(table_VxD)[1]
    if np.ndim(x_BxTxD) < 1 or np.shape(x_BxTxD)[-1] != dim:
        raise ValueError(
            f"x must end in the table's dimension {dim}; got shape {np.shape(x_BxTxD)}"
        )
    return jnp.dot(x_BxTxD, jnp.transpose(table_VxD))


def _lookup_with_check(table_VxD: jax.Array, ids: jax.Array) -> jax.Array:
    vocab_size = table_VxD.shape[0]
    if ids.size:
        bad = (ids < 0) | (ids >= vocab_size)
        first = jnp.argmax(bad.ravel())
        names = [f"i{axis}" for axis in range(ids.ndim)]
        index = dict(zip(names, jnp.unravel_index(first, ids.shape), strict=True))
        # Worded as jaxembed.checks.check_ids words it: a flat index for 0-D and 1-D IDs, an
        # index tuple otherwise. Braces are checkify's runtime placeholders.
        if ids.ndim <= 1:
            position, index = "{flat}", {"flat": first}
        else:
            position = "(" + ", ".join("{" + name + "}" for name in index) + ")"
        checkify.check(
            ~bad.any(),
            f"ids must be in [0, {vocab_size}); got {{value}} at position {position} "
            f"- the vocabulary has {vocab_size} tokens",
            value=ids.ravel()[first],
            **index,
        )
    return jnp.take(table_VxD, ids, axis=0, mode="fill")


def checked_lookup(table_VxD: jax.Array, ids: Any) -> tuple[checkify.Error, jax.Array]:
    """``lookup`` with a range check that also works under ``jit``, via ``checkify``.

    Nothing is raised inside the traced computation; the result carries an error value instead.
    Call ``err.throw()`` (raises ``checkify.JaxRuntimeError``, a ``ValueError``) or ``err.get()``
    (the message or ``None``) outside ``jit``. Float IDs still raise ``TypeError`` at once.

    Args:
      table_VxD: the (V, D) embedding table.
      ids: integer IDs of any shape.

    Returns:
      ``(err, vectors)``: vectors as ``lookup`` computes them (NaN rows for IDs >= V).

    Example:
      >>> err, vectors = jax.jit(checked_lookup)(jnp.zeros((6, 3)), jnp.array([[2, 3, 5, 7]]))
      >>> err.get()
      'ids must be in [0, 6); got 7 at position (0, 3) - the vocabulary has 6 tokens (`check` failed)'
    """
    _check_table(table_VxD)
    ids = _check_dtype(ids)
    if isinstance(ids, np.ndarray) and ids.size and ids.dtype.itemsize >= 4:
        # IDs JAX would cast to int32 (wrapping 2**32 + 1 to 1) are checked before the cast.
        low, high = int(ids.min()), int(ids.max())
        if low < np.iinfo(np.int32).min or high > np.iinfo(np.int32).max:
            check_ids(ids, len(table_VxD))
    return checkify.checkify(_lookup_with_check)(table_VxD, jnp.asarray(ids))
