"""Tests for jaxembed.positions: position tables, input embeddings, sliding windows, batches."""

import doctest
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import jaxembed.positions as jaxembed_positions
from jaxembed.embed import init_table
from jaxembed.positions import (
    init_positions,
    input_embeddings,
    iter_batches,
    sinusoidal_positions,
    sliding_windows,
)

VOCAB, DIM, MAX_LENGTH = 32, 16, 8


@pytest.mark.parametrize("max_length, dim", [(8, 16), (5, 7), (3, 1)])
def test_sinusoidal_matches_the_formula(max_length, dim):
    table_LxD = sinusoidal_positions(max_length, dim)
    chex.assert_shape(table_LxD, (max_length, dim))
    for p in range(max_length):
        for j in range(dim):
            i = j // 2
            angle = p / 10_000 ** (2 * i / dim)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(float(table_LxD[p, j]) - want) < 1e-6, (p, j)


def test_sinusoidal_known_values_and_base():
    # Position 1, dim 4: frequencies 1 and 1/100 (base 10,000, exponents 0 and 2/4).
    np.testing.assert_allclose(
        sinusoidal_positions(2, 4)[1],
        [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
        rtol=1e-6,
    )
    # base 1: every frequency is 1.
    np.testing.assert_allclose(
        sinusoidal_positions(3, 4, base=1.0)[2], [math.sin(2), math.cos(2)] * 2, rtol=1e-6
    )
    assert sinusoidal_positions(2, 4, dtype=jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_length": 0, "dim": 4}, "max_length must be a positive integer; got 0"),
        ({"max_length": 4, "dim": 0}, "dim must be a positive integer; got 0"),
        ({"max_length": 4, "dim": 4, "base": -2.0}, "base must be positive; got -2.0"),
    ],
)
def test_sinusoidal_refuses_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sinusoidal_positions(**kwargs)


def test_init_positions_is_a_random_table():
    table_LxD = init_positions(jax.random.key(0), MAX_LENGTH, DIM)
    chex.assert_shape(table_LxD, (MAX_LENGTH, DIM))
    assert len(np.unique(np.asarray(table_LxD).round(6), axis=0)) == MAX_LENGTH
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        init_positions(jax.random.key(0), 0, DIM)


POSITION_TABLES = [
    ("learned", lambda: init_positions(jax.random.key(9), MAX_LENGTH, DIM)),
    ("sinusoidal", lambda: sinusoidal_positions(MAX_LENGTH, DIM)),
]


class InputEmbeddingsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        (f"{name}_{shape_name}", make, shape)
        for name, make in POSITION_TABLES
        for shape_name, shape in [("T", (5,)), ("BxT", (3, 5)), ("full_length", (2, MAX_LENGTH))]
    )
    def test_tokens_plus_positions(self, make_positions, shape):
        token_table_VxD = init_table(jax.random.key(0), VOCAB, DIM)
        pos_table_LxD = make_positions()
        ids = jax.random.randint(jax.random.key(1), shape, 0, VOCAB)
        x = self.variant(input_embeddings)(token_table_VxD, pos_table_LxD, ids)
        chex.assert_shape(x, shape + (DIM,))
        length = shape[-1]
        expected = np.asarray(token_table_VxD)[np.asarray(ids)] + np.asarray(pos_table_LxD)[:length]
        np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(POSITION_TABLES)
    def test_same_token_differs_by_position(self, make_positions):
        token_table_VxD = init_table(jax.random.key(0), VOCAB, DIM)
        ids_BxT = jnp.array([[7, 7, 7]])
        x_BxTxD = self.variant(input_embeddings)(token_table_VxD, make_positions(), ids_BxT)
        assert not np.allclose(x_BxTxD[0, 0], x_BxTxD[0, 1])
        assert not np.allclose(x_BxTxD[0, 1], x_BxTxD[0, 2])
        # The difference is exactly the difference of the position rows.
        np.testing.assert_allclose(
            x_BxTxD[0, 1] - x_BxTxD[0, 0],
            make_positions()[1] - make_positions()[0],
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize(
    "ids, pos_shape, error, message",
    [
        (
            [[1] * 9],
            (8, DIM),
            ValueError,
            "sequences of 9 tokens are longer than the position table's max_length 8",
        ),
        (
            [[1, 2]],
            (8, DIM + 1),
            ValueError,
            f"the position table has dim {DIM + 1} but the token table has dim {DIM}",
        ),
        (3, (8, DIM), ValueError, "ids_BxT needs a sequence axis"),
        (
            [[1, VOCAB]],
            (8, DIM),
            ValueError,
            f"ids must be in [0, {VOCAB}); got {VOCAB} at position (0, 1)",
        ),
        ([[1.0, 2.0]], (8, DIM), TypeError, "ids must be integers"),
        ([[1, 2]], (8,), ValueError, "pos_table_LxD must be 2-D"),
    ],
)
def test_input_embeddings_refuses_bad_input(ids, pos_shape, error, message):
    token_table_VxD = init_table(jax.random.key(0), VOCAB, DIM)
    with pytest.raises(error, match=re.escape(message)):
        input_embeddings(token_table_VxD, jnp.zeros(pos_shape), ids)


def test_too_long_sequence_is_refused_under_jit_too():
    # T is a static shape, so the length check works while tracing.
    token_table_VxD = init_table(jax.random.key(0), VOCAB, DIM)
    with pytest.raises(ValueError, match="sequences of 9 tokens"):
        jax.jit(input_embeddings)(token_table_VxD, jnp.zeros((8, DIM)), jnp.ones((2, 9), int))


# Expected windows written out from the definition: start s = b * stride,
# inputs ids[s : s + T], targets ids[s + 1 : s + T + 1], while s + T + 1 <= N.
WINDOW_CASES = [
    ("stride_is_length", 10, 4, 4, [[0, 1, 2, 3], [4, 5, 6, 7]]),
    ("overlap", 10, 4, 1, [[s, s + 1, s + 2, s + 3] for s in range(6)]),
    ("gap", 10, 2, 3, [[0, 1], [3, 4], [6, 7]]),
    ("exact_fit", 5, 4, 4, [[0, 1, 2, 3]]),
    ("one_token", 3, 1, 1, [[0], [1]]),
]


@pytest.mark.parametrize(
    "n, max_length, stride, expected_inputs",
    [c[1:] for c in WINDOW_CASES],
    ids=[c[0] for c in WINDOW_CASES],
)
def test_sliding_windows(n, max_length, stride, expected_inputs):
    ids_N = np.arange(100, 100 + n)  # offset so that IDs and positions cannot be confused
    inputs_BxT, targets_BxT = sliding_windows(ids_N, max_length, stride)
    assert inputs_BxT.dtype == targets_BxT.dtype == np.int32
    np.testing.assert_array_equal(inputs_BxT, np.asarray(expected_inputs) + 100)
    np.testing.assert_array_equal(targets_BxT, inputs_BxT + 1)  # next token of arange
    assert len(inputs_BxT) == (n - max_length - 1) // stride + 1


def test_sliding_window_targets_are_the_next_tokens():
    ids_N = np.random.default_rng(0).integers(0, VOCAB, size=50)
    inputs_BxT, targets_BxT = sliding_windows(list(ids_N), 6, 5)
    np.testing.assert_array_equal(targets_BxT[:, :-1], inputs_BxT[:, 1:])
    for b in range(len(inputs_BxT)):
        np.testing.assert_array_equal(targets_BxT[b], ids_N[b * 5 + 1 : b * 5 + 7])
    assert inputs_BxT.flags.c_contiguous and inputs_BxT.base is None  # a copy, not a view


@pytest.mark.parametrize(
    "ids, max_length, stride, error, message",
    [
        (np.arange(4), 4, 1, ValueError, "a window of max_length 4 needs 5 IDs"),
        ([], 1, 1, ValueError, "needs 2 IDs"),
        (np.arange(10), 0, 1, ValueError, "max_length must be a positive integer; got 0"),
        (np.arange(10), 4, -1, ValueError, "stride must be a positive integer; got -1"),
        (np.arange(10.0), 4, 1, TypeError, "ids_N must be integers"),
        (np.zeros((2, 10), int), 4, 1, ValueError, "ids_N must be 1-D"),
    ],
)
def test_sliding_windows_refuses_bad_input(ids, max_length, stride, error, message):
    with pytest.raises(error, match=re.escape(message)):
        sliding_windows(ids, max_length, stride)


def test_iter_batches_in_order_and_drop_last():
    inputs_BxT, targets_BxT = sliding_windows(np.arange(12), max_length=2, stride=2)  # 5 windows
    batches = list(iter_batches(inputs_BxT, targets_BxT, batch_size=2))
    assert [x.tolist() for x, _ in batches] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert all(np.array_equal(y, x + 1) for x, y in batches)
    kept = list(iter_batches(inputs_BxT, targets_BxT, batch_size=2, drop_last=False))
    assert [len(x) for x, _ in kept] == [2, 2, 1]
    np.testing.assert_array_equal(kept[-1][0], [[8, 9]])


def test_iter_batches_shuffles_deterministically():
    inputs_BxT, targets_BxT = sliding_windows(np.arange(41), max_length=4, stride=4)  # 10
    epoch = lambda seed: list(iter_batches(inputs_BxT, targets_BxT, 5, shuffle=True, seed=seed))  # noqa: E731
    first, again, other = epoch(0), epoch(0), epoch(1)
    chex.assert_trees_all_equal(first, again)
    seen = np.concatenate([x for x, _ in first])
    assert not np.array_equal(seen, inputs_BxT)  # reordered ...
    np.testing.assert_array_equal(np.sort(seen[:, 0]), inputs_BxT[:, 0])  # ... each window once
    assert all(np.array_equal(y, x + 1) for x, y in first)  # pairs stay together
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    "batch_size, targets_shape, message",
    [
        (6, None, "batch_size 6 is larger than the 5 windows"),
        (0, None, "batch_size must be a positive integer; got 0"),
        (2, (5, 3), "must be 2-D and of one shape"),
    ],
)
def test_iter_batches_refuses_bad_input(batch_size, targets_shape, message):
    inputs_BxT, targets_BxT = sliding_windows(np.arange(12), max_length=2, stride=2)
    if targets_shape is not None:
        targets_BxT = np.zeros(targets_shape, np.int32)
    with pytest.raises(ValueError, match=re.escape(message)):
        next(iter_batches(inputs_BxT, targets_BxT, batch_size))


def test_docstring_examples_run():
    result = doctest.testmod(jaxembed_positions)
    assert result.attempted > 0 and result.failed == 0
