"""Tests for jaxembed.train: objectives, the sparse/dense step, learning, sharding."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxembed import losses, rows
from jaxembed import mesh as jm
from jaxembed import objectives as ob
from jaxembed import train as tr

V, D, B = 32, 16, 8


def _fast_first(cases, fast):
    """Parametrize cases, the first `fast` in the default run, the rest marked slow (CI runs
    them): the default run keeps one case of each value, the full grid stays tested."""
    return [
        c if i < fast else pytest.param(*c, marks=pytest.mark.slow) for i, c in enumerate(cases)
    ]


def _batch(objective, seed=0, batch=B, window=2, vocab=V, length=6):
    """A random batch in jaxembed.data's format (one step, numpy)."""
    rng = np.random.default_rng(seed)
    out = {"mask_B": np.ones(batch, np.float32), "progress": np.float32(0.25), "words": batch}
    if objective == "next-token":
        ids = rng.integers(0, vocab, (batch, length + 1)).astype(np.int32)
        return out | {"inputs_BxT": ids[:, :-1], "targets_BxT": ids[:, 1:]}
    out["center_B"] = rng.integers(0, vocab, batch).astype(np.int32)
    if objective == "skipgram":
        return out | {"context_B": rng.integers(0, vocab, batch).astype(np.int32)}
    mask = (rng.random((batch, 2 * window)) < 0.7).astype(np.float32)
    mask[:, 0] = 1.0
    context = np.where(mask > 0, rng.integers(0, vocab, (batch, 2 * window)), 0).astype(np.int32)
    return out | {"context_BxC": context, "context_mask_BxC": mask}


def _noise(vocab=V):
    return np.arange(vocab, 0, -1, dtype=np.float64) ** 0.75


def _state(config, vocab=V, seed=1):
    """A state whose output table is random too, so every touched row of both tables moves."""
    state = tr.init_state(config, vocab)
    if config.objective == "next-token":
        return state
    out = jax.random.normal(jax.random.key(seed), (vocab, config.dim)) * 0.1
    return state.replace(params={**state.params, "out": out})


def _random_state(config, vocab=V, scale=0.5):
    """A word2vec state with both tables random and large: rows that curvature rules damp."""
    state = tr.init_state(config, vocab)
    shape = state.params["embed"].shape
    embed, out = (jax.random.normal(jax.random.key(k), shape) * scale for k in (2, 3))
    return state.replace(params={"embed": embed, "out": out})


def _copy(state):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


# ---------------------------------------------------------------------------- objectives


class TestObjectives(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_negative_sampling_loss_matches_the_formula(self):
        rng = np.random.default_rng(0)
        v, u = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
        n = rng.normal(size=(4, 2, 3))
        neg_mask = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], np.float32)
        mask = np.array([1, 1, 1, 0], np.float32)

        def log_sigmoid(x):
            return -np.log1p(np.exp(-x))

        expected = 0.0
        for b in range(3):  # the 4th pair is padding
            expected -= log_sigmoid(v[b] @ u[b])
            expected -= sum(neg_mask[b, k] * log_sigmoid(-(v[b] @ n[b, k])) for k in range(2))
        loss = self.variant(losses.negative_sampling_loss)(
            *(jnp.asarray(x, jnp.float32) for x in (v, u, n, neg_mask, mask))
        )
        np.testing.assert_allclose(loss, expected, rtol=1e-5)

    def test_shared_noise_words_score_every_pair_of_their_group(self):
        rng = np.random.default_rng(1)
        v, u = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
        n_2xKxD = rng.normal(size=(2, 5, 3))
        ones = np.ones((4, 5), np.float32)
        shared = losses.negative_sampling_loss(v, u, n_2xKxD, ones, np.ones(4))
        per_pair = np.repeat(n_2xKxD, 2, axis=0)  # pairs 0,1 use group 0; 2,3 group 1
        np.testing.assert_allclose(
            shared, losses.negative_sampling_loss(v, u, per_pair, ones, np.ones(4)), rtol=1e-5
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_cbow_mean_is_the_mean_with_word2vec_gradient(self):
        context = jnp.arange(12.0).reshape(1, 4, 3)
        mask = jnp.array([[1.0, 1.0, 0.0, 1.0]])
        mean = self.variant(losses.cbow_mean)(context, mask)
        np.testing.assert_allclose(mean, (context[0, 0] + context[0, 1] + context[0, 3])[None] / 3)
        grad = jax.grad(lambda c: jnp.sum(losses.cbow_mean(c, mask)))(context)
        # word2vec gives every real context vector the whole error (1 per output), padding none.
        np.testing.assert_allclose(grad[0], np.array([[1.0] * 3, [1.0] * 3, [0.0] * 3, [1.0] * 3]))

    def test_next_token_logits_are_tied_to_the_token_table(self):
        model = losses.NextTokenModel(vocab_size=V, dim=D, context_length=5)
        ids = jnp.array([[1, 2, 3]])
        params = model.init(jax.random.key(0), ids)
        table = params["params"]["embed"]["embedding"]
        doubled = jax.tree.map(lambda x: x, params)
        doubled["params"]["embed"]["embedding"] = table * 2.0
        # Logits are bilinear in the token table (input and output); scaling it scales them.
        hidden_free = {
            **params["params"],
            "mix": jax.tree.map(jnp.zeros_like, params["params"]["mix"]),
        }
        zero_pos = {**hidden_free, "pos": {"embedding": jnp.zeros((5, D))}}
        logits = model.apply({"params": zero_pos}, ids)
        np.testing.assert_allclose(logits[0], table[ids[0]] @ table.T, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- the step


def _touched_rows(config, state, batch):
    """Rows the batch touches: input rows, and output rows (centres + noise words of this step)."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    groups = -(-batch["center_B"].shape[0] // config.share_negatives)  # the last may be short
    noise = rows.sample_noise(key, *rows.alias_tables(_noise()), (groups, config.negative))
    if config.objective == "skipgram":
        inputs = batch["context_B"]
    else:
        inputs = batch["context_BxC"][batch["context_mask_BxC"] > 0]
    return set(np.asarray(inputs).tolist()), set(batch["center_B"].tolist()) | set(
        np.asarray(noise).ravel().tolist()
    )


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("share", [1, 3, 4])  # B = 8: 3 leaves a short last group
def test_sparse_step_changes_exactly_the_rows_the_batch_touches(objective, optimizer, share):
    config = tr.TrainConfig(
        objective=objective, dim=D, optimizer=optimizer, update="sparse", share_negatives=share
    )
    state, batch = _state(config), _batch(objective)
    want_in, want_out = _touched_rows(config, state, batch)
    new, _ = tr.make_train_step(config, _noise())(_copy(state), batch)
    for name, want in (("embed", want_in), ("out", want_out)):
        changed = np.any(np.asarray(new.params[name]) != np.asarray(state.params[name]), axis=1)
        assert set(np.flatnonzero(changed).tolist()) == want, name
    assert int(new.step) == 1


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
@pytest.mark.parametrize("share", [1, 3, 4])
def test_sparse_and_dense_sgd_give_the_same_table(objective, share):
    tables = {}
    for update in ("sparse", "dense"):
        config = tr.TrainConfig(objective=objective, dim=D, update=update, share_negatives=share)
        step = tr.make_train_step(config, _noise())
        state = _state(config)
        for seed in range(3):
            state, _ = step(state, _batch(objective, seed))
        tables[update] = state.params
    chex.assert_trees_all_close(tables["sparse"], tables["dense"], rtol=1e-5, atol=1e-7)


def _bfloat16_neighbours(x):
    """The bfloat16 values just below and above each float32 magnitude (as float32, signed)."""
    bits = np.asarray(x, np.float32).view(np.uint32)
    low = bits & np.uint32(0xFFFF0000)
    return low.view(np.float32), (low + np.uint32(0x10000)).view(np.float32)


def test_stochastic_round_picks_a_neighbour_and_is_unbiased():
    x = np.asarray(jax.random.normal(jax.random.key(0), (64,)), np.float32)
    low, high = _bfloat16_neighbours(x)
    draws = np.stack(
        [np.asarray(rows.stochastic_round(x, jax.random.key(k)), np.float32) for k in range(400)]
    )
    assert np.all((draws == low) | (draws == high))
    share_up = (x - low) / (high - low)  # the chance of rounding (the magnitude) up
    up = np.mean(draws == high, axis=0)
    assert np.all(np.abs(up - share_up) < 4 * np.sqrt(share_up * (1 - share_up) / 400) + 1e-6)
    with pytest.raises(ValueError, match="rounds float32 to bfloat16"):
        rows.stochastic_round(x, jax.random.key(0), jnp.float16)


def test_bfloat16_rows_keep_updates_that_rounding_to_nearest_drops():
    """200 SGD updates of +1e-4 each on entries of 1.0, where bfloat16's spacing is 2^-7: rounded
    to nearest every one is lost; rounded at random the entries reach 1.02 on average."""
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=1e-4)
    table = jnp.ones((3, 4096), jnp.bfloat16)
    state = tx.init(table.astype(jnp.float32))
    ids, grads = jnp.array([1]), -jnp.ones((1, 4096))
    for k in range(200):
        table, state = rows.sparse_update(tx, table, state, ids, grads, key=jax.random.key(k))
    assert table.dtype == jnp.bfloat16
    values = np.asarray(table, np.float32)
    assert abs(values[1].mean() - 1.02) < 2e-3
    assert np.all(values[[0, 2]] == 1.0)  # rows not updated are not rounded either
    nearest = jnp.ones((4096,), jnp.bfloat16)
    for _ in range(200):
        nearest = (nearest.astype(jnp.float32) + 1e-4).astype(jnp.bfloat16)
    assert np.all(np.asarray(nearest, np.float32) == 1.0)
    with pytest.raises(ValueError, match="needs a rounding key - pass key"):
        rows.sparse_update(tx, table, state, ids, grads)


@pytest.mark.parametrize(
    "objective, extra",
    [
        ("skipgram", {}),
        ("cbow", {}),
        ("skipgram", {"row_scale": "newton", "row_directions": 2, "row_passes": 2}),
        ("skipgram", {"row_scale": "newton", "row_balance": True}),  # the rebalance rounds too
    ],
)
def test_a_bfloat16_step_is_the_float32_step_rounded(objective, extra):
    """From the same (bfloat16) tables, every entry of a one-pass bfloat16 step's tables is one
    of the two bfloat16 values around the float32 step's, and the rows the batch does not touch
    stay as they were: the step computes in float32 and rounds once. A second pass (or the
    rebalance) starts from rounded rows, so there each entry is within a few roundings of its
    row's largest entry."""
    config = tr.TrainConfig(objective=objective, dim=D, share_negatives=1, **extra)
    half = dataclasses.replace(config, table_dtype="bfloat16")
    assert all(t.dtype == jnp.bfloat16 for t in tr.init_state(half, V).params.values())
    state = _random_state(half)  # random float32 tables, rounded to bfloat16 here
    params = {k: v.astype(jnp.bfloat16) for k, v in state.params.items()}
    state = state.replace(params=params)
    wide = state.replace(params={k: v.astype(jnp.float32) for k, v in params.items()})
    batch = _batch(objective, seed=3)
    got, _ = tr.make_train_step(half, _noise())(_copy(state), batch)
    want, _ = tr.make_train_step(config, _noise())(_copy(wide), batch)
    touched = _touched_rows(config, wide, batch)
    for name, moved in zip(("embed", "out"), touched, strict=True):
        assert got.params[name].dtype == jnp.bfloat16
        x, r = np.asarray(want.params[name]), np.asarray(got.params[name], np.float32)
        low, high = _bfloat16_neighbours(x)
        gap = np.abs(high - low)
        if extra.get("row_passes", 1) > 1 or extra.get("row_balance"):
            gap = 4 * 2.0**-8 * np.abs(x).max(axis=1, keepdims=True)
        assert np.all(np.abs(r - x) <= gap * 1.001), name  # 1.001: float32 summation order
        if "row_balance" not in extra:  # the rebalance moves every row
            still = sorted(set(range(V)) - moved)
            np.testing.assert_array_equal(r[still], np.asarray(params[name], np.float32)[still])


def test_table_dtype_bfloat16_is_for_the_sparse_sgd_step():
    tr.TrainConfig(objective="cbow", table_dtype="bfloat16")
    for extra in ({"optimizer": "adam"}, {"update": "dense"}, {"objective": "next-token"}):
        with pytest.raises(ValueError, match="table_dtype='bfloat16' is for word2vec's sparse SGD"):
            tr.TrainConfig(table_dtype="bfloat16", **extra)
    with pytest.raises(ValueError, match="table_dtype must be one of"):
        tr.TrainConfig(table_dtype="float16")


def test_lazy_adam_matches_adam_on_rows_it_touches_and_freezes_skipped_rows():
    """Sparse Adam is lazy Adam: a row moves only when a batch touches it. Dense Adam's momentum
    keeps moving rows a later batch skips; rows touched at every step match exactly."""
    batches = [_batch("skipgram", seed) for seed in range(2)]
    batches[1]["context_B"] = batches[0]["context_B"][::-1].copy()  # same input rows twice
    params = {}
    for update in ("sparse", "dense"):
        config = tr.TrainConfig(dim=D, optimizer="adam", lr=0.01, update=update, seed=0)
        step = tr.make_train_step(config, _noise())
        state = _state(config)
        touched = [_touched_rows(config, state, batches[0])]
        state, _ = step(state, batches[0])
        params[update, 1] = jax.tree.map(np.array, state.params)
        touched.append(_touched_rows(config, state, batches[1]))
        state, _ = step(state, batches[1])
        params[update, 2] = jax.tree.map(np.array, state.params)
    # Step 1 starts from zero moments: rows without gradient do not move in either.
    chex.assert_trees_all_close(params["sparse", 1], params["dense", 1], rtol=1e-5, atol=1e-7)
    every_step = sorted(touched[0][0] & touched[1][0])
    np.testing.assert_allclose(
        params["sparse", 2]["embed"][every_step], params["dense", 2]["embed"][every_step], rtol=1e-5
    )
    skipped = sorted(touched[0][1] - touched[1][1])  # output rows of step 1 that step 2 skips
    never = sorted(set(range(V)) - touched[0][1] - touched[1][1])
    assert skipped and never
    for update, moves in (("sparse", False), ("dense", True)):
        moved = params[update, 2]["out"] != params[update, 1]["out"]
        assert np.all(moved[skipped].any(axis=1)) == moves, update
        assert not moved[never].any(), update


@pytest.mark.parametrize(
    "objective, optimizer, lr",
    [("skipgram", "sgd", 0.2), ("cbow", "sgd", 0.2), ("next-token", "adam", 0.02)],
)
def test_loss_falls_over_steps(objective, optimizer, lr):
    config = tr.TrainConfig(objective=objective, dim=D, optimizer=optimizer, lr=lr, min_lr=lr)
    step = tr.make_train_step(config, _noise(), stacked=True)
    batch = _batch(objective, batch=16)
    stacked = {k: np.stack([v] * 30) for k, v in batch.items() if k != "words"}
    _, metrics = step(tr.init_state(config, V), stacked)
    loss = np.asarray(metrics["loss_sum"]) / np.asarray(metrics["count"])
    assert loss[-5:].mean() < 0.8 * loss[:5].mean(), loss


def test_stacked_steps_equal_single_steps():
    config = tr.TrainConfig(dim=D)
    batches = [_batch("skipgram", seed) for seed in range(4)]
    single = tr.make_train_step(config, _noise())
    state = _state(config)
    for batch in batches:
        state, _ = single(state, batch)
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0] if k != "words"}
    scanned, metrics = tr.make_train_step(config, _noise(), stacked=True)(_state(config), stacked)
    chex.assert_trees_all_close(scanned.params, state.params, rtol=1e-6, atol=1e-8)
    assert metrics["loss_sum"].shape == (4,)


def test_learning_rate_decays_linearly_from_lr_to_min_lr():
    config = tr.TrainConfig(lr=0.025, min_lr=0.0001)
    rates = [float(tr.learning_rate(config, jnp.float32(p))) for p in (0.0, 0.5, 1.0, 2.0)]
    np.testing.assert_allclose(rates, [0.025, 0.01255, 0.0001, 0.0001], rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alias_tables_give_each_id_exactly_its_probability(seed):
    rng = np.random.default_rng(seed)
    weights = rng.random(50) ** 3 * (rng.random(50) < 0.8)  # some zeros, a long tail
    accept, alias = rows.alias_tables(weights)
    # Column j is drawn with probability 1/V; it yields j with accept[j], else alias[j].
    implied = np.bincount(np.arange(50), accept / 50, minlength=50)
    implied += np.bincount(alias, (1 - accept) / 50, minlength=50)
    np.testing.assert_allclose(implied, weights / weights.sum(), atol=1e-6)


def test_noise_words_follow_the_distribution():
    probs = np.array([0.5, 0.0, 0.3, 0.2])
    ids = np.asarray(rows.sample_noise(jax.random.key(0), *rows.alias_tables(probs), (20000,)))
    freq = np.bincount(ids, minlength=4) / ids.size
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert freq[1] == 0


def test_same_seed_same_table_other_seed_other_table():
    def run(seed):
        config = tr.TrainConfig(dim=D, seed=seed)
        step = tr.make_train_step(config, _noise())
        state = tr.init_state(config, V)
        for s in range(3):
            state, _ = step(state, _batch("skipgram", s))
        return np.asarray(tr.input_table(state))

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.allclose(run(3), run(4))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": "glove"}, "objective must be one of"),
        ({"dim": 0}, "dim must be a positive integer"),
        ({"negative": -1}, "negative must be a positive integer"),
        ({"lr": 0.0}, "need lr > 0"),
        ({"lr": 0.01, "min_lr": 0.1}, "min_lr <= lr"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tr.TrainConfig(**kwargs)


@pytest.mark.parametrize("share", [1, 3, 8, 64])
def test_shared_noise_words_loss_matches_word2vec_formula_per_group(share):
    """Pair i scores the noise words of group i // share; a short last group (B = 8, share 3)
    and a share larger than the batch work, padding adds nothing and is not counted."""
    config = tr.TrainConfig(dim=D, share_negatives=share)
    state, batch = _state(config), _batch("skipgram", seed=3)
    noise_GxK = np.asarray(ob.draw_noise(config, state, rows.alias_tables(_noise()), B))
    assert noise_GxK.shape == (-(-B // share), config.negative)
    embed, out = (np.asarray(state.params[name], np.float64) for name in ("embed", "out"))
    expected = 0.0
    for i, (center, context) in enumerate(zip(batch["center_B"], batch["context_B"], strict=True)):
        v = embed[context]
        expected += np.logaddexp(0.0, -(v @ out[center]))  # -log sigmoid(v . u)
        for k in noise_GxK[i // share]:
            if k != center:  # word2vec skips a noise word equal to the centre
                expected += np.logaddexp(0.0, v @ out[k])  # -log sigmoid(-v . u_k)
    _, metrics = tr.make_train_step(config, _noise())(_copy(state), batch)
    np.testing.assert_allclose(float(metrics["loss_sum"]), expected, rtol=1e-5)
    assert float(metrics["count"]) == B


def test_default_shares_noise_words_in_groups_of_64_pairs_or_16_centres():
    assert tr.TrainConfig().share_negatives == 64
    assert tr.TrainConfig(objective="cbow").share_negatives == 16
    assert tr.TrainConfig(objective="cbow", share_negatives=64).share_negatives == 64


def test_auto_update_is_sparse_for_sgd_only():
    assert tr.TrainConfig(optimizer="sgd").sparse
    assert not tr.TrainConfig(optimizer="adam").sparse
    assert tr.TrainConfig(optimizer="adam", update="sparse").sparse
    assert not tr.TrainConfig(objective="next-token", update="sparse").sparse


# ---------------------------------------------------------------------------- learned meaning


def _planted_batches(objective, steps, seed=0, batch=64, window=2):
    """Two groups of 8 words; sentences draw words from one group only."""
    rng = np.random.default_rng(seed)
    groups = np.arange(16).reshape(2, 8)
    for i in range(steps):
        group_B = rng.integers(0, 2, batch)
        sentences = groups[group_B[:, None], rng.integers(0, 8, (batch, 2 * window + 1))]
        out = {"mask_B": np.ones(batch, np.float32), "progress": np.float32(i / steps)}
        if objective == "skipgram":
            offsets = rng.integers(0, 2 * window, batch)
            offsets += offsets >= window
            context_B = sentences[np.arange(batch), offsets]
            yield out | {"center_B": sentences[:, window], "context_B": context_B}
        elif objective == "cbow":
            context = np.delete(sentences, window, axis=1).astype(np.int32)
            mask = np.ones(context.shape, np.float32)
            yield out | {
                "center_B": sentences[:, window],
                "context_BxC": context,
                "context_mask_BxC": mask,
            }
        else:
            yield out | {"inputs_BxT": sentences[:, :-1], "targets_BxT": sentences[:, 1:]}


@pytest.mark.parametrize(
    "objective, optimizer, lr",
    [("skipgram", "sgd", 0.25), ("cbow", "sgd", 0.1), ("next-token", "adam", 0.03)],
)
def test_planted_groups_are_learned(objective, optimizer, lr):
    config = tr.TrainConfig(
        objective=objective, dim=D, optimizer=optimizer, lr=lr, min_lr=0.0, context_length=4, seed=0
    )
    noise = np.ones(16)
    step = tr.make_train_step(config, noise, stacked=True)
    state = tr.init_state(config, 16)
    batches = list(_planted_batches(objective, 60))
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    state, _ = step(state, stacked)
    table = np.asarray(tr.input_table(state))
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = np.kron(np.eye(2), np.ones((8, 8))).astype(bool) & ~np.eye(16, dtype=bool)
    cross = ~np.kron(np.eye(2), np.ones((8, 8))).astype(bool)
    assert cos[same].mean() > cos[cross].mean() + 0.3, (cos[same].mean(), cos[cross].mean())


@pytest.mark.parametrize("update", ["sparse", "dense", "sparse-newton", "sparse-sequential"])
@pytest.mark.parametrize("share", [1, 4])
def test_cbow_flat_slots_give_the_same_loss_and_updates_as_the_padded_batch(update, share):
    from jaxembed.data import cbow_slots

    update, _, rule = update.partition("-")
    config = tr.TrainConfig(
        objective="cbow",
        dim=D,
        share_negatives=share,
        update=update,
        lr=0.5,
        row_scale=rule or "auto",
    )
    padded = [_batch("cbow", seed) for seed in range(3)]
    flat = [
        {k: v for k, v in b.items() if "BxC" not in k}
        | cbow_slots(b["context_BxC"], b["context_mask_BxC"], capacity=30)
        for b in padded
    ]
    for f, p in zip(flat, padded, strict=True):  # the real slots, and padding slots after them
        assert f["slot_mask_L"].sum() == p["context_mask_BxC"].sum() < f["context_L"].size
    results = []
    for batches in (padded, flat):
        state, step = _state(config), tr.make_train_step(config, _noise())
        losses_ = []
        for batch in batches:
            state, metrics = step(state, batch)
            losses_.append(float(metrics["loss_sum"]))
        results.append((losses_, jax.tree.map(np.asarray, state.params)))
    (loss_padded, params_padded), (loss_flat, params_flat) = results
    np.testing.assert_allclose(loss_flat, loss_padded, rtol=1e-6)
    for name in ("embed", "out"):
        np.testing.assert_allclose(params_flat[name], params_padded[name], rtol=1e-6, atol=1e-7)
    assert not np.allclose(params_flat["embed"], np.asarray(_state(config).params["embed"]))


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
def test_row_scale_divides_a_rows_summed_gradient_by_its_contributions(objective):
    """Two identical pairs: "none" moves their rows twice as far as one pair, "count" as far as
    one, "sqrt" sqrt(2) times as far, "cap" with row_cap 1 as far as one, with row_cap 2 twice."""
    one = _batch(objective, batch=1)
    if objective == "cbow":  # distinct context words: each row counted once in `one`
        one |= {"context_BxC": np.array([[1, 2, 3, 4]], np.int32)}
        one |= {"context_mask_BxC": np.ones((1, 4), np.float32)}
    two = {k: np.concatenate([v, v]) if k.endswith(("_B", "_BxC")) else v for k, v in one.items()}
    moved = {}
    rules = {"none": {}, "count": {}, "sqrt": {}, "cap": {"row_cap": 1}, "cap2": {"row_cap": 2}}
    for rule, extra in rules.items():
        config = tr.TrainConfig(
            objective=objective, dim=D, row_scale=rule.rstrip("2"), share_negatives=2, **extra
        )
        for name, batch in (("one", one), ("two", two)):
            state = _state(config)
            before = np.asarray(state.params["embed"])
            state, _ = tr.make_train_step(config, _noise())(state, batch)
            moved[rule, name] = np.abs(np.asarray(state.params["embed"]) - before).sum()
    assert moved["none", "one"] > 0
    factors = {"none": 2.0, "count": 1.0, "sqrt": np.sqrt(2.0), "cap": 1.0, "cap2": 2.0}
    for rule, factor in factors.items():
        np.testing.assert_allclose(moved[rule, "two"], factor * moved["none", "one"], rtol=1e-4)


def test_row_scale_needs_the_sparse_step():
    with pytest.raises(ValueError, match="update='sparse'"):
        tr.TrainConfig(row_scale="count", update="dense")
    with pytest.raises(ValueError, match="optimizer='sgd'"):
        tr.TrainConfig(row_scale="newton", optimizer="adam", update="sparse")
    assert ob.row_scale(tr.TrainConfig(update="dense"), 1 << 20) == "none"  # auto: nothing to do
    assert ob.row_scale(tr.TrainConfig(optimizer="adam", update="sparse"), 1 << 20) == "none"


def _whole_table_loss(config, state, batch, noise):
    """The skip-gram step's loss as a function of the whole tables, its noise words drawn as the
    step draws them."""
    alias = rows.alias_tables(noise)
    noise_GxK = ob.draw_noise(config, state, alias, batch["center_B"].shape[0])
    weight_BxJ = losses.pair_weights(batch["center_B"], noise_GxK, batch["mask_B"])

    def loss(embed, out):
        return losses.negative_sampling_loss(
            embed[batch["context_B"]],
            out[batch["center_B"]],
            out[noise_GxK],
            weight_BxJ[:, 1:],
            batch["mask_B"],
        )

    return loss


def _crowded_step(config, vocab):
    """(`_crowded_batch`, a state with random tables, the step's `_whole_table_loss`)."""
    rng = np.random.default_rng(3)
    batch = _crowded_batch()
    state = tr.init_state(config, vocab)
    shape = (vocab, config.dim)
    params = {name: jnp.asarray(rng.normal(0, 0.5, shape), jnp.float32) for name in "ab"}
    state = state.replace(params={"embed": params["a"], "out": params["b"]})
    return batch, state, _whole_table_loss(config, state, batch, _noise(vocab))


def _crowded_batch():
    """Rows 0 and 1 in many pairs (their plain summed step overshoots), the last pair padding."""
    return {
        "center_B": np.array([0, 0, 0, 1, 0, 2, 3, 0], np.int32),
        "context_B": np.array([1, 1, 4, 1, 5, 1, 6, 7], np.int32),
        "mask_B": np.array([1, 1, 1, 1, 1, 1, 1, 0], np.float32),
        "progress": np.float32(0.0),
        "words": 8,
    }


@pytest.mark.parametrize("rule", ["newton", "sequential", "implicit"])
# vocab 9: row totals V x D for the output rows; 40: by slot. Two cases cover both of each.
@pytest.mark.parametrize("share, vocab", _fast_first([(1, 9), (2, 40), (1, 40), (2, 9)], 2))
def test_curvature_row_scales_step_along_the_gradient(rule, share, vocab):
    """Each row r moves by -min(lr, 1/h) g (newton) or -lr g / (1 + lr h) (implicit), where g is
    its summed gradient and h = g' H g / |g|^2, with g and H (the row's block of the Hessian)
    from jax.grad and jax.hessian of the step's loss over the whole tables; "sequential" takes
    newton's step for the input rows, then for the output rows at the moved input rows."""
    dim, lr = 4, 3.0
    config = tr.TrainConfig(
        dim=dim, lr=lr, min_lr=0.0, row_scale=rule, share_negatives=share, negative=3
    )
    batch, state, loss = _crowded_step(config, vocab)
    new, _ = tr.make_train_step(config, _noise(vocab))(_copy(state), batch)
    damped = 0
    for arg, name in enumerate(("embed", "out")):
        table = np.asarray(state.params[name], np.float64)
        tables = (state.params["embed"], state.params["out"])
        if rule == "sequential" and name == "out":
            tables = (new.params["embed"], state.params["out"])
        grad = np.asarray(jax.grad(loss, arg)(*tables))
        hess = np.asarray(jax.hessian(loss, arg)(*tables), np.float64)  # V x D x V x D
        want = table.copy()
        for r in range(vocab):
            g = grad[r]
            if not np.any(g):
                continue
            h = g @ hess[r, :, r, :] @ g / (g @ g)
            step = lr / (1.0 + lr * h) if rule == "implicit" else min(lr, 1.0 / h)
            damped += step < lr * 0.99
            want[r] = table[r] - step * g
        np.testing.assert_allclose(np.asarray(new.params[name]), want, rtol=2e-4, atol=1e-6)
    assert damped >= 2  # the rule changed some rows (and the test would see it if it did not)


def _filtered_step(rule, hess_DxD, grad_D, t):
    """The step of a row under `rule` resolving every direction of its curvature: each eigen-
    direction of curvature c moves by t / (1 + t c) (implicit: -(H + I / t)^-1 g) or min(t, 1/c)
    (newton) of the gradient there; and whether some direction moved less than t."""
    curvature, basis = np.linalg.eigh(hess_DxD)
    if rule == "implicit":
        step = np.linalg.solve(hess_DxD + np.eye(len(grad_D)) / t, grad_D)
        share = t / (1.0 + t * curvature)
    else:
        share = np.minimum(t, 1.0 / np.maximum(curvature, 1e-30))
        step = basis @ (share * (basis.T @ grad_D))
    return step, bool(np.any(share < 0.99 * t))


@pytest.mark.parametrize("rule, dim", [("implicit", 4), ("newton", 2)])
# vocab 9: V slots; 40: a slot per occurrence. Two cases cover every value of each.
@pytest.mark.parametrize(
    "passes, share, vocab",
    _fast_first([(1, 1, 9), (2, 2, 40), (1, 1, 40), (1, 2, 9), (1, 2, 40), (2, 1, 9), (2, 1, 40),
                 (2, 2, 9)], 2),
)  # fmt: skip
def test_every_direction_of_a_rows_curvature_takes_the_rules_own_step(
    rule, dim, passes, share, vocab
):
    """With as many directions as the row has (row_directions = D), implicit moves each row r by
    -(H + I / t)^-1 g and newton (D = 2) by newton's filter on each eigen-direction of H,
    min(t, 1/c) of the gradient there, g its summed gradient and H its block of the Hessian,
    from jax.grad and jax.hessian of the step's loss over the whole tables, t = lr / passes; a
    second pass does it again at the moved tables. With one direction the step is along g (the
    tests above): this one fails if the Krylov directions are not used."""
    lr = 3.0
    config = tr.TrainConfig(
        dim=dim,
        lr=lr,
        min_lr=0.0,
        row_scale=rule,
        row_directions=dim,
        row_passes=passes,
        share_negatives=share,
        negative=3,
    )
    batch, state, loss = _crowded_step(config, vocab)
    new, _ = tr.make_train_step(config, _noise(vocab))(_copy(state), batch)
    along_g = tr.make_train_step(dataclasses.replace(config, row_directions=1), _noise(vocab))
    one_direction, _ = along_g(_copy(state), batch)
    tables, t, filtered = (state.params["embed"], state.params["out"]), lr / passes, 0
    for _ in range(passes):
        moved = []
        for arg in range(2):
            grad = np.asarray(jax.grad(loss, arg)(*tables), np.float64)
            hess = np.asarray(jax.hessian(loss, arg)(*tables), np.float64)  # V x D x V x D
            table = np.asarray(tables[arg], np.float64).copy()
            for r in range(vocab):
                if np.any(grad[r]):
                    step, shortened = _filtered_step(rule, hess[r, :, r, :], grad[r], t)
                    table[r] -= step
                    filtered += shortened
            moved.append(jnp.asarray(table, jnp.float32))
        tables = tuple(moved)
    assert filtered >= 2  # some direction stopped short of plain SGD's step
    for arg, name in enumerate(("embed", "out")):
        got = np.asarray(new.params[name])
        np.testing.assert_allclose(got, np.asarray(tables[arg]), rtol=2e-4, atol=2e-6)
        assert not np.allclose(got, np.asarray(one_direction.params[name]), atol=1e-4), name


@pytest.mark.parametrize("rule, moves", [("newton", 2.0), ("joint", 1.0)])
def test_joint_moves_a_lone_score_to_its_newton_point_where_newton_moves_it_twice_as_far(
    rule, moves
):
    """One pair, its noise words all equal to its centre (so skipped): one score s = u . v and
    its loss softplus(-s), whose Newton step on s is 1/sigma(s). At a learning rate far above it,
    each row's own Newton step moves s that far (newton: twice, both rows moving), joint's split
    moves it once (to first order in the step)."""
    noise = np.array([1.0, 0.0, 0.0, 0.0])
    config = tr.TrainConfig(dim=3, lr=100.0, min_lr=0.0, row_scale=rule, share_negatives=1)
    state = _random_state(config, vocab=4)
    batch = {
        "center_B": np.array([0], np.int32),
        "context_B": np.array([1], np.int32),
        "mask_B": np.ones(1, np.float32),
        "progress": np.float32(0.0),
        "words": 1,
    }
    v, u = np.asarray(state.params["embed"][1]), np.asarray(state.params["out"][0])
    new, _ = tr.make_train_step(config, noise)(_copy(state), batch)
    dv, du = np.asarray(new.params["embed"][1]) - v, np.asarray(new.params["out"][0]) - u
    sigma = 1.0 / (1.0 + np.exp(-(u @ v)))
    np.testing.assert_allclose(u @ dv + v @ du, moves / sigma, rtol=1e-4)


@pytest.mark.parametrize("passes", [1, 2])
def test_cbow_with_one_context_word_takes_skipgrams_newton_step(passes):
    """CBOW's mean of one context row is that row: with newton its step equals skip-gram's on the
    same (centre, context) pairs, whose curvature the test above checks against jax.hessian
    (and so with row_passes, whose second pass a test below checks the same way)."""
    batch = _batch("skipgram", seed=4)
    cbow_batch = {k: v for k, v in batch.items() if k != "context_B"}
    cbow_batch |= {"context_BxC": batch["context_B"][:, None], "context_mask_BxC": np.ones((B, 1))}
    tables = {}
    for objective, rule, b in (
        ("skipgram", "newton", batch),
        ("cbow", "newton", cbow_batch),
        ("cbow", "none", cbow_batch),
    ):
        extra = {"row_passes": passes} if rule == "newton" else {}
        config = tr.TrainConfig(objective=objective, dim=D, lr=4.0, row_scale=rule, **extra)
        state, _ = tr.make_train_step(config, _noise())(_random_state(config), b)
        tables[objective, rule] = jax.tree.map(np.asarray, state.params)
    chex.assert_trees_all_close(
        tables["cbow", "newton"], tables["skipgram", "newton"], rtol=1e-5, atol=1e-7
    )
    for name in ("embed", "out"):  # newton damped rows of both tables
        assert not np.allclose(tables["cbow", "newton"][name], tables["cbow", "none"][name])


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
def test_auto_row_scale_is_plain_sgd_up_to_the_default_batch_and_newton_above(objective):
    default = ob.get(objective).batch_size
    for size, same_as in ((default, "none"), (2 * default, "newton")):
        batch = _batch(objective, seed=5, batch=size, vocab=64)
        tables = {}
        for rule in ("auto", "none", "newton"):
            config = tr.TrainConfig(objective=objective, dim=8, row_scale=rule, lr=0.5)
            state = _random_state(config, vocab=64)
            state, _ = tr.make_train_step(config, _noise(64))(state, batch)
            tables[rule] = jax.tree.map(np.asarray, state.params)
        chex.assert_trees_all_equal(tables["auto"], tables[same_as])
        other = "newton" if same_as == "none" else "none"
        assert not np.allclose(tables["auto"]["out"], tables[other]["out"]), (size, other)


@pytest.mark.parametrize("objective", ["skipgram", "cbow"])
def test_auto_row_passes_are_two_above_the_objectives_size(objective):
    size = ob.get(objective).two_passes_above + 64
    batch = _batch(objective, seed=5, batch=size, vocab=64)
    tables = {}
    for passes in (None, 1, 2):
        config = tr.TrainConfig(objective=objective, dim=8, lr=0.5, row_passes=passes)
        state, _ = tr.make_train_step(config, _noise(64))(_random_state(config, vocab=64), batch)
        tables[passes] = jax.tree.map(np.asarray, state.params)
    chex.assert_trees_all_equal(tables[None], tables[2])
    assert not np.allclose(tables[None]["out"], tables[1]["out"])


@pytest.mark.parametrize(
    "above, auto, given",
    [
        # two directions, two passes, each row's step at most 1.0 long
        ("bound_steps_above", {}, {"row_passes": 2, "row_directions": 2}),
        pytest.param(  # the same (slow: the case above runs it)
            "four_passes_above", {}, {"row_passes": 2, "row_directions": 2}, marks=pytest.mark.slow
        ),
        # along the gradient alone: four passes there, bounded
        ("four_passes_above", {"row_directions": 1}, {"row_passes": 4, "row_directions": 1}),
    ],
)
def test_auto_bounds_each_rows_step_above_the_objectives_size(above, auto, given):
    """Above bound_steps_above auto's newton step takes row_step_max=1.0 (it diverged without at
    512k pairs) and resolves two directions of each row's curvature (two_directions_above), in
    two passes; with one direction, four passes above four_passes_above: the same tables as
    newton with those settings given, other tables than without the bound."""
    size = getattr(ob.get("skipgram"), above) + 64
    batch = _batch("skipgram", seed=5, batch=size, vocab=64)
    tables = {}
    for name, extra in (
        ("auto", auto),
        ("given", {"row_scale": "newton", **given, "row_step_max": 1.0, "row_balance": True}),
        ("unbounded", {"row_scale": "newton", **given, "row_balance": True}),
    ):
        config = tr.TrainConfig(dim=8, lr=0.5, **extra)
        state, _ = tr.make_train_step(config, _noise(64))(_random_state(config, vocab=64), batch)
        tables[name] = jax.tree.map(np.asarray, state.params)
    chex.assert_trees_all_equal(tables["auto"], tables["given"])
    assert not np.allclose(tables["auto"]["embed"], tables["unbounded"]["embed"])
    at = ob.get("skipgram").bound_steps_above
    assert ob.row_step_max(tr.TrainConfig(), at) is None  # not up to it
    assert ob.row_directions(tr.TrainConfig(), at) == 1
    assert ob.row_step_max(tr.TrainConfig(row_scale="newton"), size) is None  # only auto's
    assert ob.row_directions(tr.TrainConfig(row_scale="newton"), size) == 1
    # CBOW: two directions, bounded, above 65,536 centres (measured at 131,072)
    cbow = tr.TrainConfig(objective="cbow")
    assert [ob.row_directions(cbow, b) for b in (65536, 131072)] == [1, 2]
    assert [ob.row_step_max(cbow, b) for b in (65536, 131072)] == [None, 1.0]
    assert [ob.row_passes(cbow, b) for b in (65536, 131072)] == [2, 1]


def test_auto_takes_cbows_two_direction_step_in_one_pass():
    """CBOW above two_directions_above: auto's newton step resolves two directions in one pass
    (two_directions_passes; two passes cost WordSim-353 there), bounded: the tables of newton
    with those settings given, other tables than with two passes."""
    size = ob.get("cbow").two_directions_above + 64
    batch = _batch("cbow", seed=5, batch=size, vocab=64)
    given = {"row_scale": "newton", "row_directions": 2, "row_step_max": 1.0}
    tables = {}
    for name, extra in (
        ("auto", {}),
        ("one", {**given, "row_passes": 1}),
        ("two", {**given, "row_passes": 2}),
    ):
        config = tr.TrainConfig(objective="cbow", dim=8, lr=0.5, **extra)
        state, _ = tr.make_train_step(config, _noise(64))(_random_state(config, vocab=64), batch)
        tables[name] = jax.tree.map(np.asarray, state.params)
    chex.assert_trees_all_equal(tables["auto"], tables["one"])
    assert not np.allclose(tables["auto"]["embed"], tables["two"]["embed"])


def test_small_steps_gram_sums_each_small_steps_row_totals():
    """sum_i G_i' G_i, G_i the rows' gradients summed within small step i (`per` examples)."""
    rng = np.random.default_rng(3)
    rows, per, dim = 5, 3, 4
    ids = [rng.integers(0, rows, 10).astype(np.int32), rng.integers(0, rows, 6).astype(np.int32)]
    grads = [rng.normal(size=(10, dim)), rng.normal(size=(6, dim))]
    pairs = [np.arange(10), np.repeat(np.arange(3) * 3, 2)]  # a second piece, as noise rows
    want = np.zeros((dim, dim))
    for small in range(4):
        totals = np.zeros((rows, dim))
        for i, g, p in zip(ids, grads, pairs, strict=True):
            np.add.at(totals, i[p // per == small], g[p // per == small])
        want += totals.T @ totals
    as_jax = [tuple(jnp.asarray(x, jnp.float32) for x in piece) for piece in (ids, grads, pairs)]
    got = ob._small_steps_gram(rows, per, *as_jax)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # one step of all the examples: the totals over the batch
    totals = np.zeros((rows, dim))
    for i, g in zip(ids, grads, strict=True):
        np.add.at(totals, i, g)
    np.testing.assert_allclose(
        ob._small_steps_gram(rows, 16, *as_jax), totals.T @ totals, rtol=1e-5
    )


def test_rebalance_keeps_the_scores_and_moves_the_gram_gap_to_the_target():
    rng = np.random.default_rng(4)
    embed, out = (jnp.asarray(rng.normal(size=(40, 6)), jnp.float32) for _ in range(2))
    params = {"embed": embed, "out": out}
    gap = ob._gram_gap(params)
    change = rng.normal(size=(6, 6))
    target = gap + 0.5 * (change + change.T)  # a small move: 7% of the gap
    new = ob._rebalance(params, target)
    np.testing.assert_allclose(new["embed"] @ new["out"].T, embed @ out.T, rtol=1e-4, atol=1e-4)
    before = np.linalg.norm(gap - target)
    after = np.linalg.norm(ob._gram_gap(new) - target)
    assert after < 0.02 * before, (after, before)
    assert not np.allclose(new["embed"], embed, atol=1e-3)


def test_a_balanced_step_leaves_the_gram_gap_where_its_small_steps_would():
    """One plain step of four small steps' examples moves E'E - U'U by lr^2 (sum G)'(sum G)
    instead of the small steps' sum of lr^2 G_i'G_i; with row_balance it ends where the four
    small steps end (to second order in lr), with the scores of the large step unchanged."""
    objective = "skipgram"
    per = ob.get(objective).batch_size
    vocab, dim, lr = 48, 8, 0.001
    config = tr.TrainConfig(objective=objective, dim=dim, lr=lr, min_lr=lr, row_scale="none")
    balanced = dataclasses.replace(config, row_balance=True)
    big = _batch(objective, seed=7, batch=4 * per, vocab=vocab)
    big.pop("words")
    groups = 4 * per // config.share_negatives
    noise = jax.random.categorical(
        jax.random.key(5), jnp.log(jnp.asarray(_noise(vocab))), shape=(groups, config.negative)
    ).astype(jnp.int32)
    big["noise_GxK"] = noise
    start = _random_state(config, vocab=vocab, scale=0.3)

    def step(cfg, state, batch):
        return tr.train_step(state, batch, config=cfg)[0]

    plain = step(config, start, big)
    bal = step(balanced, start, big)
    small = start
    per_group = groups // 4
    for i in range(4):
        part = {
            k: v[i * per : (i + 1) * per] for k, v in big.items() if np.ndim(v) and k != "noise_GxK"
        }
        part["progress"] = big["progress"]
        part["noise_GxK"] = noise[i * per_group : (i + 1) * per_group]
        small = step(config, small, part)
    gap = {n: np.asarray(ob._gram_gap(s.params)) for n, s in (("plain", plain), ("bal", bal))}
    want = np.asarray(ob._gram_gap(small.params))
    moved = np.linalg.norm(want - np.asarray(ob._gram_gap(start.params)))
    off_plain, off_bal = (np.linalg.norm(gap[n] - want) for n in ("plain", "bal"))
    assert off_plain > 0.2 * moved, (off_plain, moved)  # the large step moves it elsewhere
    assert off_bal < 0.1 * off_plain, (off_bal, off_plain)
    scores = {n: s.params["embed"] @ s.params["out"].T for n, s in (("plain", plain), ("bal", bal))}
    np.testing.assert_allclose(scores["bal"], scores["plain"], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="row_balance rebalances the tables"):
        tr.TrainConfig(optimizer="adam", row_balance=True)
    with pytest.raises(ValueError, match="row_balance rebalances skip-gram's tables"):
        tr.TrainConfig(objective="cbow", row_balance=True)
    assert not ob.row_balance(tr.TrainConfig(objective="cbow"), 1 << 20)


# ---------------------------------------------------------------------------- sharding

_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import jax
    {setup}
    sys.path.insert(0, {tests!r})
    from test_train import _batch, _noise, V, D
    from jaxembed import mesh as jm
    from jaxembed import train as tr

    results = {{}}
    for objective in {objectives}:
        config = tr.TrainConfig(objective=objective, dim=D, lr=0.5, **{train_extra})
        batches = [_batch(objective, seed, batch=16) for seed in range(3)]
        for name, mesh_shape, split in {meshes}:
            if mesh_shape is None:
                state = tr.init_state(config, V)
                step = tr.make_train_step(config, _noise())
                for batch in batches:
                    state, _ = step(state, batch)
            else:
                mesh = jm.make_mesh(*mesh_shape)
                state = jm.shard_state(tr.init_state(config, V), mesh, split)
                step = tr.make_train_step(config, _noise(), mesh=mesh, split=split)
                for batch in batches:
                    state, _ = step(state, jm.shard_batch(batch, mesh))
                sharding = state.params["embed"].sharding  # split over "model"
                assert len(sharding.device_set) == jax.device_count(), sharding
                parts = mesh_shape[1]
                want = (V // parts, D) if split == "rows" else (V, D // parts)
                assert sharding.shard_shape((V, D)) == want, sharding
            table = jm.to_host(state.params)
            results[objective + "/" + name] = {{
                k: np.asarray(v, np.float32).tolist() for k, v in table.items()
            }}
    if jax.process_index() == 0:
        with open({out!r}, "w") as f:
            json.dump(results, f)
    """
)


def _run_script(tmp_path, setup, meshes, objectives, processes=1, env_extra=None, train=None):
    out = tmp_path / "tables.json"
    script = _SHARDED_SCRIPT.format(
        train_extra=train or {},
        setup=setup,
        tests=os.path.dirname(__file__),
        meshes=meshes,
        objectives=tuple(objectives),
        out=str(out),
    )
    path = tmp_path / "script.py"
    path.write_text(script)
    env = {**os.environ, **(env_extra or {})}
    procs = [
        subprocess.Popen(
            [sys.executable, str(path), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return json.loads(out.read_text())


def _assert_same_tables(results, reference):
    for name, tables in results.items():
        base = results[name.split("/")[0] + "/" + reference]
        for k in tables:
            np.testing.assert_allclose(tables[k], base[k], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "objective, rule",
    [
        ("skipgram", "auto"),
        ("skipgram", "newton x2"),  # its row totals and what each row has left span the mesh
        ("skipgram", "newton k2 x2 balance"),  # its Krylov directions and Gram matrices too
        ("cbow", "auto bfloat16"),  # its rounding bits, however the tables are split
        # each piece on its own (slow: "newton x2" and the balance case run them all)
        pytest.param("skipgram", "newton", marks=pytest.mark.slow),
        pytest.param("skipgram", "implicit k2 x2", marks=pytest.mark.slow),
        pytest.param("skipgram", "newton k2 x2", marks=pytest.mark.slow),
        pytest.param("cbow", "auto", marks=pytest.mark.slow),
        pytest.param("cbow", "newton", marks=pytest.mark.slow),
    ],
)
def test_eight_devices_give_the_same_table_as_one(tmp_path, objective, rule):
    meshes = [
        ("one", None, None),
        ("data8", (8, 1), "rows"),
        ("4x2", (4, 2), "rows"),
        ("2x4columns", (2, 4), "columns"),
    ]
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    setup = "assert jax.device_count() == 8"
    train = {"row_scale": rule.split()[0], "row_passes": 2 if " x2" in rule else None}
    train["row_directions"] = 2 if " k2" in rule else 1
    train["row_balance"] = rule.endswith("balance") or None
    train["table_dtype"] = "bfloat16" if rule.endswith("bfloat16") else "float32"
    results = _run_script(tmp_path, setup, meshes, [objective], env_extra=env, train=train)
    assert len(results) == 4
    _assert_same_tables(results, "one")


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_same_table_as_one(tmp_path):
    setup = textwrap.dedent(
        f"""
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address="localhost:{_free_port()}",
                                   num_processes=2, process_id=int(sys.argv[1]))
        assert jax.device_count() == 2 and jax.local_device_count() == 1
        """
    )
    meshes = [
        ("data2", (2, 1), "rows"),
        ("model2", (1, 2), "rows"),
        ("columns2", (1, 2), "columns"),
    ]
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    objectives = ["skipgram", "cbow"]
    results = _run_script(tmp_path, setup, meshes, objectives, processes=2, env_extra=env)
    single = _run_script(
        tmp_path, "", [("one", None, None)], objectives, env_extra={"JAX_PLATFORMS": "cpu"}
    )
    _assert_same_tables(results | single, "one")


@pytest.mark.parametrize("vocab, rows", [(1, 128), (128, 128), (129, 256), (61286, 61312)])
def test_tables_are_padded_to_a_multiple_of_128_rows(vocab, rows):
    assert jm.padded_vocab_size(vocab) == rows


@pytest.mark.parametrize(
    "rule, directions", [("newton", 1), ("newton", 2), ("implicit", 1), ("implicit", 3)]
)
def test_row_step_max_shortens_the_rows_that_would_move_further(rule, directions):
    """With row_step_max = m each row moves along its rule's step, by at most m: the rows whose
    step is longer are shortened to m, the others move exactly as without the limit."""
    vocab = 12
    batch = _batch("skipgram", seed=6, batch=64, vocab=vocab)
    steps, lengths = {}, None
    for step_max in (None, "median"):
        if step_max == "median":  # half the rows' steps are longer
            step_max = float(np.median(lengths[lengths > 0]))
        config = tr.TrainConfig(
            dim=D,
            lr=4.0,
            min_lr=0.0,
            row_scale=rule,
            row_step_max=step_max,
            row_directions=directions,
        )
        state = _random_state(config, vocab=vocab)
        new, _ = tr.make_train_step(config, _noise(vocab))(_copy(state), batch)
        steps[step_max is None] = {
            name: np.asarray(new.params[name]) - np.asarray(state.params[name])
            for name in ("embed", "out")
        }
        if lengths is None:
            lengths = np.concatenate([np.linalg.norm(d, axis=1) for d in steps[True].values()])
    capped = 0
    for name, free in steps[True].items():
        length = np.linalg.norm(free, axis=1, keepdims=True)
        want = free * np.minimum(1.0, step_max / np.maximum(length, 1e-30))
        np.testing.assert_allclose(steps[False][name], want, rtol=1e-4, atol=1e-6)
        capped += int(np.sum(length > step_max * 1.01))
    assert capped >= 2
    with pytest.raises(ValueError, match="row_step_max limits the steps of the curvature rules"):
        tr.TrainConfig(row_scale="count", row_step_max=1.0)


@pytest.mark.parametrize("share", [1, 2])
@pytest.mark.parametrize("vocab", [9, 40])  # row totals: V x D for the output rows; by slot
def test_row_passes_move_on_only_the_rows_stopped_at_a_minimum(share, vocab):
    """With row_passes=2, newton's step runs twice over the batch: the second pass at the rows
    the first moved (both tables), each row moving by -min(left, 1/h) g there, where left is the
    learning rate its first pass did not spend (lr - min(lr, 1/h)): rows that took their plain
    step stay where the first pass put them, the ones stopped at a minimum move on. g and h
    come from jax.grad and jax.hessian of the step's loss over the whole tables."""
    dim, lr = 4, 3.0
    rng = np.random.default_rng(3)
    tables = [jnp.asarray(rng.normal(0, 0.5, (vocab, dim)), jnp.float32) for _ in "ab"]
    batch = _crowded_batch()
    results = {}
    for passes in (1, 2):
        config = tr.TrainConfig(
            dim=dim,
            lr=lr,
            min_lr=0.0,
            row_scale="newton",
            share_negatives=share,
            negative=3,
            row_passes=passes,
        )
        state = tr.init_state(config, vocab)
        state = state.replace(params={"embed": tables[0], "out": tables[1]})
        results[passes] = tr.make_train_step(config, _noise(vocab))(_copy(state), batch)
    loss = _whole_table_loss(config, state, batch, _noise(vocab))
    left = [np.full(vocab, lr), np.full(vocab, lr)]
    moved_on = 0
    for first in (True, False):
        new = [np.asarray(t, np.float64).copy() for t in tables]
        for arg in (0, 1):
            grad = np.asarray(jax.grad(loss, arg)(*tables))
            hess = np.asarray(jax.hessian(loss, arg)(*tables), np.float64)
            for r in range(vocab):
                g = grad[r]
                if not np.any(g):
                    continue
                h = g @ hess[r, :, r, :] @ g / (g @ g)
                step = min(left[arg][r], 1.0 / h)
                moved_on += not first and step > 1e-6
                new[arg][r] -= step * g
                left[arg][r] -= step
        if first:  # one pass: newton's step
            for arg, name in enumerate(("embed", "out")):
                got = np.asarray(results[1][0].params[name])
                np.testing.assert_allclose(got, new[arg], rtol=2e-4, atol=1e-6)
        tables = [jnp.asarray(t, jnp.float32) for t in new]
    for arg, name in enumerate(("embed", "out")):
        got = np.asarray(results[2][0].params[name])
        np.testing.assert_allclose(got, new[arg], rtol=2e-4, atol=1e-6)
    assert moved_on >= 2  # the second pass moved rows (and the test would see it if it did not)
    # the step's loss is its first pass's, the loss of the rows it started from
    assert float(results[2][1]["loss_sum"]) == float(results[1][1]["loss_sum"])
    with pytest.raises(ValueError, match="row_passes repeats newton's or implicit's step"):
        tr.TrainConfig(row_scale="joint", row_passes=2)
    with pytest.raises(ValueError, match="row_directions sizes newton's or implicit's step"):
        tr.TrainConfig(row_scale="sequential", row_directions=2)
    for rule in ("newton", "auto"):  # auto's large batches take newton steps
        with pytest.raises(ValueError, match="newton's step resolves 1 or 2 directions"):
            tr.TrainConfig(row_scale=rule, row_directions=3)


def test_row_passes_leave_a_row_the_step_max_shortened_where_the_first_pass_put_it():
    """row_step_max bounds the whole step: a row the limit shortened has gone as far as a step
    may, and later passes do not move it."""
    vocab = 12
    batch = _batch("skipgram", seed=6, batch=64, vocab=vocab)
    tables = {}
    for passes, step_max in ((1, None), (2, None), (1, 1e-3), (2, 1e-3)):
        config = tr.TrainConfig(
            dim=D,
            lr=4.0,
            min_lr=0.0,
            row_scale="newton",
            row_step_max=step_max,
            row_passes=passes,
        )
        state, _ = tr.make_train_step(config, _noise(vocab))(
            _copy(_random_state(config, vocab=vocab)), batch
        )
        tables[passes, step_max] = jax.tree.map(np.asarray, state.params)
    assert not np.allclose(tables[2, None]["out"], tables[1, None]["out"])  # passes matter ...
    chex.assert_trees_all_close(tables[2, 1e-3], tables[1, 1e-3])  # ... not past the limit
