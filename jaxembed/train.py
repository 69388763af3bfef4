"""Learning the table: training state and the jitted optax step, on one device or many.

What differs between objectives (word2vec skip-gram and CBOW, next-token prediction) is in their
records in `jaxembed.objectives`; the mesh helpers are in `jaxembed.mesh`.

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
  those rows, scattered back (`jaxembed.rows.sparse_update`). For SGD it equals the dense step
  up to float summation order; with Adam it is "lazy Adam".
- ``"auto"`` (default): sparse for word2vec with SGD, which equals dense and was faster at
  every size measured; dense for Adam/AdamW (true Adam) and for next-token, whose softmax over
  the vocabulary touches every row anyway. BENCHMARKS.md has the timings.

The state declares its tables: ``TrainState.tables`` names the leaves (parameters and optimiser
moments) whose rows are token IDs, the learned input table first, so that sharding them
(`jaxembed.mesh.state_sharding`) and reading the learned table (`input_table`) ask the state
instead of guessing from shapes.

    >>> config = TrainConfig(objective="skipgram", dim=16)
    >>> state = init_state(config, vocab_size=32)
    >>> step = make_train_step(config, np.ones(32))
    >>> batch = {"center_B": np.arange(8, dtype=np.int32), "context_B": np.arange(8, 16, dtype=np.int32),
    ...          "mask_B": np.ones(8, np.float32), "progress": np.float32(0)}
    >>> state, metrics = step(state, batch)
    >>> int(state.step), float(metrics["count"])
    (1, 8.0)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from optax.tree_utils import tree_map_params

from jaxembed import objectives as ob
from jaxembed.checks import ParameterError, one_of, optional_positive_int, positive_int
from jaxembed.mesh import state_sharding
from jaxembed.rows import alias_tables

OPTIMIZERS = ("sgd", "adam", "adamw")
UPDATES = ("auto", "sparse", "dense")
TABLE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a table is learned (the model and optimiser; the data side is loop.FitConfig).

    optimizer, lr, min_lr and share_negatives left None take the objective's defaults
    (`jaxembed.objectives`): word2vec's SGD from 0.025 (skip-gram; CBOW 0.05, as word2vec.c and
    fastText) to 0.0001, next-token's Adam from 0.003 to 0.0003; 64 pairs (skip-gram) or 16
    centres (CBOW) per draw of noise words.
    """

    objective: str = "skipgram"  # "skipgram", "cbow" or "next-token"
    dim: int = 100  # D, the vector size (gensim's vector_size)
    negative: int = 5  # noise words per positive pair (gensim's negative); word2vec objectives
    share_negatives: int | None = None  # consecutive examples sharing one draw of noise words;
    # 1 = one each (word2vec.c); None: the objective's (skip-gram 64, CBOW 16)
    ns_exponent: float = 0.75  # noise words drawn from counts ** ns_exponent (gensim's name;
    # word2vec.c's 0.75; fastText's 0.5; 0: uniform)
    optimizer: str | None = None  # "sgd", "adam" or "adamw" (optax); None: the objective's
    lr: float | None = None  # initial learning rate (gensim's alpha); None: the objective's
    min_lr: float | None = None  # final learning rate, reached linearly (min_alpha)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    update: str = "auto"  # "auto", "sparse" (rows the batch touches) or "dense" (whole table)
    # word2vec, sparse SGD: how a row's summed gradient in the step is applied: as is ("none"),
    # divided by its contributions in the batch ("count"), their square root ("sqrt"), capped at
    # row_cap contributions' worth ("cap"), or sized by the curvature of the step's loss along it
    # ("newton", "sequential", "joint", "implicit"; objectives._curvature_scales). "auto": "none"
    # up to the objective's default batch size, "newton" above (objectives.row_scale;
    # BENCHMARKS.md, 7)
    row_scale: str = "auto"
    row_cap: int = 32
    # curvature rules (auto: above the default batch): no row moves further than this in one
    # step (implicit: in one pass); None: no limit, but 1.0 where auto takes newton steps above
    # the objective's bound_steps_above (skip-gram: 262,144 pairs; objectives.row_step_max):
    # 1.0 keeps newton stable at 512k-1M skip-gram pairs (BENCHMARKS.md, 7)
    row_step_max: float | None = None
    # newton (auto: above the default batch): passes a step makes over its batch, each at the
    # rows the last one moved, every row spending at most lr over them all - a row stopped at
    # the minimum along its gradient goes on from there, the others are done after one pass.
    # None: 1, 2 above the objective's two_passes_above, 4 above its four_passes_above where
    # newton resolves one direction, its two_directions_passes where two (CBOW: 1;
    # objectives.row_passes). implicit, and newton with row_directions 2: steps of lr / passes
    # each (implicit's None: 1)
    row_passes: int | None = None
    # implicit and newton: directions of each row's curvature its step resolves
    # (objectives._krylov_steps: a Krylov subspace of the row's block of the step's Hessian);
    # 1: along its gradient only; newton: 1 or 2. None: 1, but 2 where auto takes newton steps
    # above the objective's two_directions_above (skip-gram: 262,144 pairs, CBOW: 65,536
    # centres; objectives.row_directions; BENCHMARKS.md, 7)
    row_directions: int | None = None
    # skip-gram, sparse SGD: after each step, turn the tables into E A and U A^-1 (the same
    # scores, the same loss) whose E'E - U'U moved as the plain small steps of the objective's
    # default batch size would have moved it (objectives._rebalance). None: off, but on where
    # auto takes curvature steps above the objective's balance_above (skip-gram: 262,144 pairs;
    # objectives.row_balance; BENCHMARKS.md, 7)
    row_balance: bool | None = None
    # word2vec, sparse SGD: "bfloat16" keeps both tables in bfloat16 (half the memory and half
    # the bytes each step gathers and scatters, the bound of a GPU step); every step computes
    # in float32 and rounds the rows it sets back at random (jaxembed.rows.stochastic_round)
    table_dtype: str = "float32"
    context_length: int = 64  # next-token: positions in the position table (T)
    seed: int = 1  # initial table and noise-word draws

    def __post_init__(self) -> None:
        objective = ob.get(self.objective)
        for name in ("optimizer", "lr", "min_lr", "share_negatives"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(objective, name))
        one_of("optimizer", self.optimizer, OPTIMIZERS)
        one_of("update", self.update, UPDATES)
        one_of("row_scale", self.row_scale, ob.ROW_SCALES)
        one_of("table_dtype", self.table_dtype, TABLE_DTYPES)
        if self.table_dtype != "float32" and not (self.sparse and self.optimizer == "sgd"):
            raise ParameterError(
                f"table_dtype={self.table_dtype!r} is for word2vec's sparse SGD step (skip-gram, "
                f"CBOW) - use table_dtype='float32' with objective={self.objective!r}, "
                f"optimizer={self.optimizer!r} and update={self.update!r}",
                "table_dtype",
            )
        if self.row_scale not in ("auto", "none") and not self.sparse:
            raise ParameterError(
                f"row_scale={self.row_scale!r} scales the rows of a sparse word2vec step - use "
                "update='sparse' (or 'auto' with optimizer='sgd'), or row_scale='auto'",
                "row_scale",
                "update",
            )
        if self.row_scale in ob.CURVATURE_RULES and self.optimizer != "sgd":
            raise ParameterError(
                f"row_scale={self.row_scale!r} sizes SGD steps by the loss's curvature - use "
                f"optimizer='sgd', or row_scale='auto' with optimizer={self.optimizer!r}",
                "row_scale",
                "optimizer",
            )
        for name in (
            "dim",
            "negative",
            "share_negatives",
            "context_length",
            "row_cap",
        ):
            positive_int(name, getattr(self, name))
        optional_positive_int("row_passes", self.row_passes)
        optional_positive_int("row_directions", self.row_directions)
        if not self.lr > 0 or not self.min_lr >= 0 or self.min_lr > self.lr:
            raise ParameterError(
                f"need lr > 0 and 0 <= min_lr <= lr; got lr={self.lr}, min_lr={self.min_lr}",
                "lr",
                "min_lr",
            )
        if self.row_step_max is not None and not self.row_step_max > 0:
            raise ParameterError(
                f"row_step_max must be > 0 or None (no limit); got {self.row_step_max}",
                "row_step_max",
            )
        if self.row_step_max is not None and self.row_scale not in ob.CURVATURE_RULES + ("auto",):
            raise ParameterError(
                f"row_step_max limits the steps of the curvature rules - use row_scale='auto' or "
                f"one of {ob.CURVATURE_RULES}, not {self.row_scale!r}",
                "row_step_max",
                "row_scale",
            )
        if (self.row_passes or 1) > 1 and self.row_scale not in ("auto", "newton", "implicit"):
            raise ParameterError(
                f"row_passes repeats newton's or implicit's step - use row_scale='auto', "
                f"'newton' or 'implicit', not {self.row_scale!r}, or row_passes=None or 1",
                "row_passes",
                "row_scale",
            )
        directions = self.row_directions or 1
        if directions > 1 and self.row_scale not in ("auto", "newton", "implicit"):
            raise ParameterError(
                f"row_directions sizes newton's or implicit's step - use row_scale='auto', "
                f"'newton' or 'implicit', not {self.row_scale!r}, or row_directions=None or 1",
                "row_directions",
                "row_scale",
            )
        if directions > 2 and self.row_scale in ("auto", "newton"):
            raise ParameterError(
                f"newton's step resolves 1 or 2 directions of a row's curvature; got "
                f"row_directions={self.row_directions} - use 2, or row_scale='implicit' for more",
                "row_directions",
            )
        if self.row_balance and not objective.balances:
            raise ParameterError(
                f"row_balance rebalances skip-gram's tables; {self.objective}'s step does not "
                "keep E'E - U'U as skip-gram's does - use objective='skipgram', or leave "
                "row_balance unset",
                "row_balance",
                "objective",
            )
        if self.row_balance and not (self.sparse and self.optimizer == "sgd"):
            raise ParameterError(
                "row_balance rebalances the tables after a sparse word2vec SGD step - use "
                "optimizer='sgd' with update='auto' or 'sparse', or leave row_balance unset",
                "row_balance",
            )
        if not 0 <= self.ns_exponent <= 1:
            raise ParameterError(
                f"ns_exponent must be in [0, 1]; got {self.ns_exponent} (word2vec's 0.75, "
                "fastText's 0.5)",
                "ns_exponent",
            )
        if self.weight_decay < 0:
            raise ParameterError(
                f"weight_decay must be >= 0; got {self.weight_decay}", "weight_decay"
            )

    @property
    def sparse(self) -> bool:
        """Whether the step updates only the rows a batch touches (see the module docstring)."""
        if not ob.get(self.objective).sparse:
            return False
        if self.update == "auto":
            return self.optimizer == "sgd"
        return self.update == "sparse"


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["step", "params", "opt_state", "key"],
    meta_fields=["tables"],
)
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a step reads and writes; a pytree, so it can be jitted, sharded and saved.

    (What `flax.struct.dataclass` makes, without importing flax for word2vec: the same leaves
    and key paths, so checkpoints are unchanged.)
    """

    step: jax.Array  # int32 scalar: steps taken; the noise draws use fold_in(key, step)
    params: Any  # word2vec: {"embed": VxD, "out": VxD}; next-token: flax variables
    opt_state: Any  # optax state (sparse objectives: one per table, so rows can be gathered)
    key: jax.Array  # uint32 (2,) raw PRNG key data (raw so orbax can save it)
    # Paths (jax.tree_util.keystr) of the leaves whose rows are token IDs, the input table first.
    tables: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> TrainState:
        return dataclasses.replace(self, **changes)


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
    """A fresh state: the objective's initial parameters and the optimiser state.

    Args:
      config: the training configuration (objective, dim, optimizer, seed).
      vocab_size: V, rows of the token table.

    Returns:
      A TrainState on the default device, step 0.

    Example:
      >>> state = init_state(TrainConfig(dim=16), vocab_size=32)
      >>> state.params["embed"].shape, float(jnp.abs(state.params["out"]).max())
      ((32, 16), 0.0)
      >>> state.tables[0]
      ".params['embed']"
    """
    vocab_size = positive_int("vocab_size", vocab_size)
    objective = ob.get(config.objective)
    init_key, noise_key = jax.random.split(jax.random.key(config.seed))
    tx = make_optimizer(config)
    params, table_paths = objective.init(init_key, config, vocab_size)
    is_table = _mask(params, table_paths)
    if objective.sparse:  # one optimiser state per table: its rows are gathered with the table's
        # optax takes its state's dtypes from the table's: a bfloat16 table's (SGD: its learning
        # rate) stays float32, as every step computes
        opt_state = {name: tx.init(table.astype(jnp.float32)) for name, table in params.items()}
        opt_tables = {
            name: tree_map_params(
                tx, lambda _, t=is_table[name]: t, opt_state[name], transform_non_params=_false
            )
            for name in params
        }
    else:
        opt_state = tx.init(params)
        opt_tables = tree_map_params(
            tx, lambda _, t: t, opt_state, is_table, transform_non_params=_false
        )
    key_data = jax.random.key_data(noise_key)
    state = TrainState(jnp.zeros((), jnp.int32), params, opt_state, key_data)
    mask = TrainState(False, is_table, opt_tables, False)
    found = [jax.tree_util.keystr(p) for p, t in jax.tree_util.tree_leaves_with_path(mask) if t]
    tables = tuple(".params" + p for p in table_paths)  # the input table first
    return state.replace(tables=tables + tuple(p for p in found if p not in tables))


def _false(_: Any) -> bool:
    return False


def _mask(params: Any, paths: tuple[str, ...]) -> Any:
    """True at the leaves of `params` whose paths are listed."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path) in paths, params
    )


def input_table(state: TrainState) -> jax.Array:
    """The learned token table (V, D): word2vec's input vectors, or next-token's tied table, in
    its own dtype (bfloat16 under `TrainConfig.table_dtype="bfloat16"`; `loop.fit`'s
    `table_VxD` is float32 either way)."""
    if not state.tables:
        raise ValueError("this TrainState declares no tables - make it with init_state")
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if jax.tree_util.keystr(path) == state.tables[0]:
            return leaf
    raise ValueError(f"the state has no leaf {state.tables[0]} - was it made by init_state?")


def learning_rate(config: TrainConfig, progress: jax.Array) -> jax.Array:
    """word2vec's schedule: lr at the start, min_lr at the end, linear in between."""
    progress = jnp.clip(progress, 0.0, 1.0)
    return config.lr - (config.lr - config.min_lr) * progress


# ---------------------------------------------------------------------------- the step


def _with_lr(opt_state: Any, lr: jax.Array) -> Any:
    """The optimiser state(s) with the injected learning rate set to `lr`."""

    def injected(node: Any) -> bool:  # optax.inject_hyperparams' state (stateful or not)
        return isinstance(node, tuple) and hasattr(node, "hyperparams")

    def set_lr(node: Any) -> Any:
        if not injected(node):
            return node
        return node._replace(hyperparams={**node.hyperparams, "learning_rate": lr})

    return jax.tree.map(set_lr, opt_state, is_leaf=injected)


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    config: TrainConfig,
    alias: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step: loss, gradient, optax update (pure; jit it or use make_train_step).

    Args:
      state: the TrainState.
      batch: arrays from jaxembed.data's batches (the objective's batch_keys); "progress" sets
        the learning rate.
      config: the TrainConfig the state was made with.
      alias: word2vec objectives: `jaxembed.rows.alias_tables` of the noise distribution.

    Returns:
      (new state, metrics): metrics hold "loss_sum" (float32, this batch), "count" (pairs or
      tokens it covers) and "lr".
    """
    tx = make_optimizer(config)
    lr = learning_rate(config, batch["progress"])
    state = state.replace(opt_state=_with_lr(state.opt_state, lr))
    update = ob.get(config.objective).update
    loss_sum, count, params, opt_state = update(config, tx, state, batch, alias, lr)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    metrics = {"loss_sum": loss_sum, "count": jnp.asarray(count, jnp.float32), "lr": lr}
    return new_state, metrics


@functools.partial(
    jax.jit, static_argnames=("config", "mesh", "split", "stacked"), donate_argnums=0
)
def _jitted_step(state, batch, alias, *, config, mesh, split, stacked):
    """train_step (or a scan of it), compiled once per (config, mesh, stacked, shapes)."""
    step = functools.partial(train_step, config=config, alias=alias)
    if mesh is not None:
        data = NamedSharding(mesh, PartitionSpec(*((None,) * stacked), "data"))
        batch = {
            k: v if k == "progress" else jax.lax.with_sharding_constraint(v, data)
            for k, v in batch.items()
        }
    if stacked and alias is not None:  # one random-number loop for all the steps' noise words
        steps, batch_size = batch["center_B"].shape
        noise_GxK = ob.draw_noise(config, state, alias, batch_size, steps)
        batch = {**batch, "noise_GxK": noise_GxK}
    state, metrics = jax.lax.scan(step, state, batch) if stacked else step(state, batch)
    if mesh is not None:
        # Pin the new state to the layout it came in (XLA may otherwise pick another).
        state = jax.lax.with_sharding_constraint(state, state_sharding(state, mesh, split))
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
      mesh: if given, the state is expected sharded by `mesh.shard_state(state, mesh, split)`
        and batches are split by examples over its "data" axis.
      split: how the mesh's "model" devices split the tables: "rows" or "columns"
        (`jaxembed.mesh.state_sharding`).
      stacked: the batch arrays carry a leading axis of S steps, run by `jax.lax.scan` in one
        call; metrics then have that leading axis too.

    Returns:
      step(state, batch) -> (state, metrics); the state passed in must not be used again.

    Example:
      >>> step = make_train_step(TrainConfig(dim=16), np.ones(32), stacked=True)
    """
    objective = ob.get(config.objective)
    alias = None
    if objective.negatives:
        if noise_probs_V is None:
            raise ParameterError(
                f"{config.objective} needs noise_probs_V (e.g. vocab.counts ** 0.75)",
                "noise_probs_V",
            )
        alias = alias_tables(noise_probs_V)
        if mesh is not None:
            alias = jax.device_put(alias, NamedSharding(mesh, PartitionSpec()))

    def step(state, batch):
        keys = objective.batch_keys + objective.other_keys
        batch = {k: batch[k] for k in keys if k in batch}
        return _jitted_step(
            state, batch, alias, config=config, mesh=mesh, split=split, stacked=stacked
        )

    return step
