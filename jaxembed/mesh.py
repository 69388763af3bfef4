"""Scale-out with JAX's own machinery: a device mesh, tables sharded by vocabulary rows.

The mesh has two axes: "data" splits each batch by examples, "model" splits the tables (and
their optimiser moments) by vocabulary rows, PartitionSpec("model", None). `jax.jit` with these
shardings lets XLA's partitioner place the gathers, scatters and collectives; there is no
hand-written communication. The same code runs on one CPU, 8 TPU cores, or several hosts after
`jax.distributed.initialize` (each process then holds its own devices' shards; `shard_state`
and `shard_batch` build global arrays from host data that every process holds alike).

What to expect (measured on CPU, see benchmarks/train_step.py): row sharding spreads the
tables' memory, which is what a 50k x 768 table on many small devices needs; it does not speed
up a CPU host, whose "devices" share one memory. Pure data parallelism ("data" > 1, "model" = 1)
keeps a full table on every device, and the sparse update then becomes a full-table all-reduce
per step: use "model" for word2vec.

    >>> from jaxembed.train import TrainConfig, init_state, make_train_step
    >>> config, V = TrainConfig(dim=16), 128
    >>> mesh = make_mesh(data=4, model=2)  # 8 devices
    >>> state = shard_state(init_state(config, V), mesh)
    >>> step = make_train_step(config, np.ones(V), mesh=mesh)
    >>> batch = {"center_B": np.arange(8, dtype=np.int32), "context_B": np.arange(8, 16, dtype=np.int32),
    ...          "mask_B": np.ones(8, np.float32), "progress": np.float32(0)}
    >>> state, metrics = step(state, shard_batch(batch, mesh))
    >>> state.params["embed"].sharding.spec[0], float(metrics["count"])  # rows split over "model"
    ('model', 8.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.tree_util import keystr

from jaxembed.checks import ParameterError, one_of

SPLITS = ("rows", "columns")
ROW_MULTIPLE = 128  # tables get a multiple of this many rows (see padded_vocab_size)


def make_mesh(data: int | None = None, model: int = 1, devices=None) -> Mesh:
    """A ("data", "model") mesh over all devices (of all processes): data x model = #devices.

    Args:
      data: devices splitting each batch; None for (number of devices) / model.
      model: devices splitting the tables' vocabulary rows.
      devices: the devices (default jax.devices(), every process's).

    Returns:
      A Mesh whose axes are in "auto" mode (XLA's partitioner places the communication).

    Example:
      >>> dict(make_mesh(model=2).shape)  # on 8 devices
      {'data': 4, 'model': 2}
    """
    devices = jax.devices() if devices is None else list(devices)
    if model < 1 or len(devices) % model:
        raise ParameterError(
            f"model={model} must divide the {len(devices)} devices - choose a divisor of "
            f"{len(devices)}",
            "model",
        )
    data = len(devices) // model if data is None else data
    if data * model != len(devices):
        raise ParameterError(
            f"data x model = {data} x {model} must equal the {len(devices)} devices - "
            f"use data={len(devices) // model} (on CPU, XLA_FLAGS="
            "--xla_force_host_platform_device_count=N sets how many there are)",
            "data",
        )
    grid = np.asarray(devices).reshape(data, model)
    return Mesh(grid, ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


def padded_vocab_size(vocab_size: int) -> int:
    """Table rows for a vocabulary: V rounded up to a multiple of ROW_MULTIPLE.

    Sharded rows must divide evenly among the "model" devices; rounding every table up to a
    multiple of 128 (any power of two up to 128 devices) keeps a checkpoint usable on any such
    mesh. The extra rows belong to no word: they are never looked up nor drawn as noise.

    Example:
      >>> padded_vocab_size(61286)
      61312
    """
    return -(-vocab_size // ROW_MULTIPLE) * ROW_MULTIPLE


def state_sharding(state: Any, mesh: Mesh, split: str = "rows") -> Any:
    """NamedShardings for a TrainState: its tables split over "model", the rest replicated.

    Which leaves are tables is declared by the state (`TrainState.tables`: the token tables and
    their optimiser moments), not guessed from shapes.

    Args:
      state: a TrainState (or its abstract shapes), from `jaxembed.train.init_state`.
      mesh: from `make_mesh`.
      split: "rows" (vocabulary rows, PartitionSpec("model", None): memory scales out) or
        "columns" (vector dimensions, PartitionSpec(None, "model"): every device does a share of
        every row's work, with one small all-reduce of the scores per step - the faster choice
        on a multi-core CPU host).

    Example:
      >>> from jaxembed.train import TrainConfig, init_state
      >>> state = init_state(TrainConfig(dim=16), 128)
      >>> state_sharding(state, make_mesh(model=2)).params["embed"].spec
      P('model', None)
    """
    one_of("split", split, SPLITS)
    table = PartitionSpec("model", None) if split == "rows" else PartitionSpec(None, "model")
    tables = set(state.tables)

    def spec(path, _):
        return NamedSharding(mesh, table if keystr(path) in tables else PartitionSpec())

    return jax.tree_util.tree_map_with_path(spec, state)


def shard_state(state: Any, mesh: Mesh, split: str = "rows") -> Any:
    """Places a state that every process holds alike (same seed or checkpoint) onto `mesh`.

    Args:
      state: the TrainState, on the host or one device.
      mesh: from `make_mesh`.
      split: "rows" or "columns", as in `state_sharding`; the split axis of every table must
        be a multiple of the mesh's "model" devices (`padded_vocab_size` pads the rows).

    Example:
      >>> from jaxembed.train import TrainConfig, init_state
      >>> state = shard_state(init_state(TrainConfig(dim=16), 128), make_mesh(model=8))
      >>> [shard.data.shape for shard in state.params["embed"].addressable_shards][:2]
      [(16, 16), (16, 16)]
    """
    shardings = state_sharding(state, mesh, split)
    parts, axis = mesh.shape["model"], 0 if split == "rows" else 1
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if keystr(path) in state.tables and np.shape(leaf)[axis] % parts:
            what = "rows" if split == "rows" else "columns (dim)"
            raise ParameterError(
                f"{keystr(path)} has {np.shape(leaf)[axis]} {what}, not a multiple of the "
                f"mesh's {parts} model devices - change the mesh or the size (padded_vocab_size "
                "pads the vocabulary)",
                "split",
            )

    def put(leaf, sharding):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, state, shardings)


def shard_batch(batch: Mapping[str, Any], mesh: Mesh, stacked: bool = False) -> dict:
    """Places a host batch (alike on every process) onto `mesh`, examples split over "data".

    Args:
      batch: numpy arrays with the example axis first (after the step axis when `stacked`);
        scalars ("progress") are replicated, Python numbers ("words") left out.
      mesh: from `make_mesh`.
      stacked: arrays carry a leading axis of steps (see `make_train_step`).

    Example:
      >>> batch = shard_batch({"mask_B": np.ones(8, np.float32), "words": 8}, make_mesh())
      >>> batch["mask_B"].sharding.spec == PartitionSpec("data"), "words" in batch
      (True, False)
    """
    data_spec = PartitionSpec(*((None,) * stacked), "data")
    out = {}
    for name, value in batch.items():
        if not isinstance(value, np.ndarray | np.generic | jax.Array):
            continue  # host-side counters such as "words"
        host = np.asarray(value)
        per_example = host.ndim > stacked
        if per_example and host.shape[stacked] % mesh.shape["data"]:
            raise ParameterError(
                f"batch_size {host.shape[stacked]} must be a multiple of the mesh's "
                f"{mesh.shape['data']} data devices - change batch_size",
                "batch_size",
            )
        sharding = NamedSharding(mesh, data_spec if per_example else PartitionSpec())
        out[name] = jax.make_array_from_callback(host.shape, sharding, lambda i, h=host: h[i])
    return out


def to_host(tree: Any) -> Any:
    """numpy copies of (possibly sharded, multi-process) arrays: every process gets all of it.

    Example:
      >>> to_host(jax.numpy.ones((8, 2))).shape
      (8, 2)
    """

    def fetch(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(fetch, tree)
