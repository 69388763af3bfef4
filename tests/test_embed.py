"""Tests for jaxembed.embed: lookup == one-hot product == Dense == nn.Embed, and the ID checks."""

import doctest
import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from flax.linen.linear import default_embed_init

import jaxembed.embed as jaxembed_embed
from jaxembed.embed import (
    attend,
    checked_lookup,
    count_params,
    dense_lookup,
    embed_module,
    init_table,
    lookup,
    one_hot_lookup,
)
from jaxembed.vocab import Vocab

VOCAB, DIM = 32, 16


def _embed_apply(table_VxD, ids):
    module, variables = embed_module(table_VxD)
    return module.apply(variables, ids)


# The four routes from IDs to vectors; each must give the rows of the table.
ROUTES = {
    "lookup": lookup,
    "one_hot": one_hot_lookup,
    "dense": dense_lookup,
    "nn_embed": _embed_apply,
}

ID_SHAPES = [
    ("scalar", ()),
    ("T", (7,)),
    ("BxT", (3, 5)),
    ("empty", (0,)),
    ("Bx0", (2, 0)),
]
DTYPES = [("float32", jnp.float32), ("bfloat16", jnp.bfloat16)]


def _table(dtype=jnp.float32, vocab=VOCAB, dim=DIM, seed=0):
    return init_table(jax.random.key(seed), vocab, dim, dtype=dtype)


def _ids(shape, vocab=VOCAB, seed=1):
    return jax.random.randint(jax.random.key(seed), shape, 0, vocab)


def _cases(*tables):
    """The cross product of named parameter tables, for parameterized.named_parameters."""
    cases = [("", ())]
    for table in tables:
        cases = [(f"{n}_{m}".strip("_"), a + (b,)) for n, a in cases for m, b in table]
    return [(name, *args) for name, args in cases]


class LookupRoutesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(_cases(ID_SHAPES, DTYPES))
    def test_every_route_returns_the_table_rows(self, shape, dtype):
        table_VxD, ids = _table(dtype), _ids(shape)
        expected = np.asarray(table_VxD)[np.asarray(ids)]  # numpy fancy indexing: the reference
        for name, route in ROUTES.items():
            got = self.variant(route)(table_VxD, ids)
            assert got.dtype == table_VxD.dtype, name
            chex.assert_shape(got, shape + (DIM,))
            # Exact for bfloat16 too: each output sums one 1 * x and zeros, with no rounding.
            np.testing.assert_array_equal(np.asarray(got), expected, err_msg=name)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(_cases([("distinct", True), ("repeated", False)], DTYPES))
    def test_gradients_wrt_table_agree(self, distinct, dtype):
        table_VxD = _table(dtype)
        if distinct:
            ids_BxT = jax.random.permutation(jax.random.key(1), VOCAB)[:24].reshape(4, 6)
        else:
            ids_BxT = jax.random.randint(jax.random.key(1), (4, 6), 0, 5)  # many repeats
        w_BxTxD = jax.random.normal(jax.random.key(2), (4, 6, DIM), dtype)

        def gradient(route):
            loss = lambda table: jnp.sum(route(table, ids_BxT) * w_BxTxD)  # noqa: E731
            return self.variant(jax.grad(loss))(table_VxD)

        grads = {name: gradient(route) for name, route in ROUTES.items()}
        # Reference: row v of the gradient is the sum of the weights of the positions holding v.
        expected_VxD = np.zeros((VOCAB, DIM))
        np.add.at(expected_VxD, np.asarray(ids_BxT), np.asarray(w_BxTxD, np.float64))
        repeats = int(np.bincount(np.asarray(ids_BxT).ravel()).max())
        # A row summed from k weights is rounded up to k - 1 times, in an order that differs
        # between scatter-add (gather) and matmul (one-hot): allow one epsilon per addition.
        eps = float(jnp.finfo(dtype).eps)
        atol = (repeats - 1) * eps * float(np.abs(expected_VxD).max())
        for name, grad_VxD in grads.items():
            assert grad_VxD.dtype == table_VxD.dtype, name
            got = np.asarray(grad_VxD, np.float64)
            if distinct:  # one weight per row: nothing is rounded, all routes are exact
                np.testing.assert_array_equal(got, expected_VxD, err_msg=name)
            else:
                np.testing.assert_allclose(got, expected_VxD, rtol=0, atol=atol, err_msg=name)
        # nn.Embed is jnp.take, as lookup: the same gradient bit for bit.
        chex.assert_trees_all_equal(grads["lookup"], grads["nn_embed"])


def test_lecture_quick_fox_selects_rows():
    # Demonstration 6: alphabetical IDs of "quick fox is in the house", a 6 x 3 random table.
    vocab = Vocab.build("quick fox is in the house".split(), order="alphabetical")
    ids = vocab.encode("in is the house".split())
    assert ids.tolist() == [2, 3, 5, 1]
    table_VxD = init_table(jax.random.key(123), len(vocab), 3)
    chex.assert_shape(table_VxD, (6, 3))
    vectors_Nx3 = lookup(table_VxD, ids)
    chex.assert_shape(vectors_Nx3, (4, 3))
    for row, token_id in enumerate([2, 3, 5, 1]):
        np.testing.assert_array_equal(vectors_Nx3[row], table_VxD[token_id])
    np.testing.assert_array_equal(lookup(table_VxD, vocab["is"]), table_VxD[3])


@pytest.mark.parametrize("route", [one_hot_lookup, dense_lookup], ids=["one_hot", "dense"])
def test_lecture_one_hot_product_equals_lookup(route):
    # Demonstration 7: IDs [2, 3, 1], vocabulary 4, dimension 5.
    ids = jnp.array([2, 3, 1])
    table_VxD = init_table(jax.random.key(7), 4, 5)
    one_hot_3x4 = jax.nn.one_hot(ids, 4)
    np.testing.assert_array_equal(one_hot_3x4, np.eye(4)[[2, 3, 1]])
    np.testing.assert_array_equal(route(table_VxD, ids), lookup(table_VxD, ids))
    np.testing.assert_array_equal(route(table_VxD, ids), np.asarray(table_VxD)[[2, 3, 1]])


def test_gpt2_table_size_without_allocating():
    # Demonstration 5: GPT-2 small's token table, sized by jax.eval_shape (no memory used).
    shapes = jax.eval_shape(nn.Embed(50_257, 768).init, jax.random.key(0), jnp.zeros(1, int))
    assert shapes["params"]["embedding"].shape == (50_257, 768)
    assert count_params(shapes) == 50_257 * 768 == 38_597_376
    ours = jax.eval_shape(lambda key: init_table(key, 50_257, 768), jax.random.key(0))
    assert ours.shape == (50_257, 768) and count_params(ours) == 38_597_376


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_init_table_matches_nn_embed_default(dtype):
    key = jax.random.key(3)
    ours_VxD = init_table(key, VOCAB, DIM, dtype=dtype)
    theirs_VxD = default_embed_init(key, (VOCAB, DIM), dtype)
    assert ours_VxD.dtype == dtype
    np.testing.assert_allclose(np.asarray(ours_VxD, np.float32), np.asarray(theirs_VxD, np.float32))


@pytest.mark.parametrize("stddev", [None, 0.02, 3.0])
def test_init_table_stddev(stddev):
    table_VxD = init_table(jax.random.key(4), 256, 64, stddev=stddev)
    want = stddev if stddev is not None else 1 / np.sqrt(64)
    # 16,384 normal draws: the sample standard deviation is within 2% with near certainty.
    assert abs(float(jnp.std(table_VxD)) / want - 1) < 0.02
    assert abs(float(jnp.mean(table_VxD))) < 0.05 * want


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 0, "dim": 3}, "vocab_size must be a positive integer; got 0"),
        ({"vocab_size": 6, "dim": -1}, "dim must be a positive integer; got -1"),
        ({"vocab_size": 6.0, "dim": 3}, "vocab_size must be a positive integer; got 6.0"),
        ({"vocab_size": 6, "dim": 3, "stddev": 0.0}, "stddev must be positive"),
    ],
)
def test_init_table_refuses_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        init_table(jax.random.key(0), **kwargs)


BAD_IDS = [
    ("too_large_2d", [[2, 3, 5, 1], [0, 1, 2, 7]], "got 7 at position (1, 3)"),
    ("negative_1d", [4, -1, 2], "got -1 at position 1"),
    ("scalar", 6, "got 6 at position 0"),
    ("far_too_large", [0, 10**6], "got 1000000 at position 1"),
]


# nn.Embed itself checks nothing (documented); the other routes refuse bad concrete IDs.
CHECKED_ROUTES = [lookup, one_hot_lookup, dense_lookup]


@pytest.mark.parametrize("route", CHECKED_ROUTES)
@pytest.mark.parametrize("name, ids, detail", BAD_IDS, ids=[c[0] for c in BAD_IDS])
@pytest.mark.parametrize(
    "container", [lambda x: x, np.asarray, jnp.asarray], ids=["python", "numpy", "jax"]
)
def test_concrete_out_of_range_ids_are_refused(route, name, ids, detail, container):
    table_VxD = _table(vocab=6, dim=3)
    expected = f"ids must be in [0, 6); {detail} - the vocabulary has 6 tokens"
    with pytest.raises(ValueError) as info:
        route(table_VxD, container(ids))
    assert str(info.value) == expected


@pytest.mark.parametrize("route", [*CHECKED_ROUTES, checked_lookup])
@pytest.mark.parametrize("ids", [[1.0, 2.0], np.array([1, 2], np.float32), jnp.array([True])])
def test_non_integer_ids_are_refused(route, ids):
    with pytest.raises(TypeError, match=r"ids must be integers.*astype\(jnp.int32\)"):
        route(_table(), ids)


def test_concrete_ids_closed_over_in_jit_are_still_checked():
    table_VxD, ids = _table(vocab=6, dim=3), jnp.array([1, 6])
    with pytest.raises(ValueError, match=r"got 6 at position 1"):
        jax.jit(lambda table: lookup(table, ids))(table_VxD)


@pytest.mark.parametrize("route", [lookup, one_hot_lookup, dense_lookup, embed_module, attend])
@pytest.mark.parametrize("shape", [(6,), (2, 3, 4), (0, 3)])
def test_bad_table_shapes_are_refused(route, shape):
    args = (jnp.zeros(shape),) if route is embed_module else (jnp.zeros(shape), jnp.array([0]))
    with pytest.raises(ValueError, match=r"table_VxD must be 2-D|table_VxD has no rows"):
        route(*args)


def test_empty_list_of_ids_gives_no_vectors():
    assert lookup(_table(), []).shape == (0, DIM)


# What the routes return for bad IDs inside jit, where they cannot be refused. The module
# docstring documents exactly this; if a JAX release changes it, this test says so.
V_SMALL = 4


@pytest.mark.parametrize(
    "bad_id, gather_row",
    [
        (V_SMALL, None),  # >= V: NaN
        (V_SMALL + 5, None),
        (-1, V_SMALL - 1),  # [-V, 0): wraps to V + id
        (-V_SMALL, 0),
        (-V_SMALL - 1, None),  # < -V: NaN
    ],
)
def test_documented_behaviour_of_bad_ids_under_jit(bad_id, gather_row):
    table_VxD = jnp.arange(V_SMALL * 3, dtype=jnp.float32).reshape(V_SMALL, 3) + 1
    ids = jnp.array([1, bad_id])
    for name in ("lookup", "nn_embed"):
        got = jax.jit(ROUTES[name])(table_VxD, ids)
        np.testing.assert_array_equal(got[0], table_VxD[1])
        if gather_row is None:
            assert np.isnan(got[1]).all(), name
        else:
            np.testing.assert_array_equal(got[1], table_VxD[gather_row], err_msg=name)
    for name in ("one_hot", "dense"):
        got = jax.jit(ROUTES[name])(table_VxD, ids)
        np.testing.assert_array_equal(got[1], np.zeros(3), err_msg=name)
    # Gradient of the gather: NaN rows send nothing back; wrapped IDs feed row V + id.
    grad_VxD = jax.jit(jax.grad(lambda table, i: jnp.sum(lookup(table, i)), argnums=0))(
        table_VxD, ids
    )
    expected_V = np.zeros(V_SMALL)
    expected_V[1] += 1
    if gather_row is not None:
        expected_V[gather_row] += 1
    np.testing.assert_array_equal(grad_VxD, np.repeat(expected_V[:, None], 3, axis=1))
    # Plain indexing, which lookup avoids, clamps instead: a silently wrong row.
    clamped = jax.jit(lambda table, i: table[i])(table_VxD, ids)[1]
    clamped_row = min(max(bad_id + V_SMALL if bad_id < 0 else bad_id, 0), V_SMALL - 1)
    np.testing.assert_array_equal(clamped, table_VxD[clamped_row])


class CheckedLookupTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("too_large_2d", [[2, 3], [9, 1]], "got 9 at position (1, 0)"),
        ("negative_1d", [0, 5, -2], "got -2 at position 2"),
        ("scalar", 6, "got 6 at position 0"),
    )
    def test_catches_bad_ids(self, ids, detail):
        err, vectors = self.variant(checked_lookup)(_table(vocab=6, dim=3), jnp.asarray(ids))
        expected = f"ids must be in [0, 6); {detail} - the vocabulary has 6 tokens"
        assert err.get() == expected + " (`check` failed)"
        with pytest.raises(ValueError, match=re.escape(expected)):
            err.throw()
        chex.assert_shape(vectors, np.shape(ids) + (3,))

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(ID_SHAPES)
    def test_passes_good_ids(self, shape):
        table_VxD, ids = _table(), _ids(shape)
        err, vectors = self.variant(checked_lookup)(table_VxD, ids)
        assert err.get() is None
        err.throw()  # raises nothing
        np.testing.assert_array_equal(vectors, lookup(table_VxD, ids))


class AttendTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("D", (DIM,)), ("BxTxD", (2, 3, DIM)))
    def test_attend_is_the_tied_projection(self, shape):
        table_VxD = _table()
        x = jax.random.normal(jax.random.key(5), shape)
        logits = self.variant(attend)(table_VxD, x)
        chex.assert_shape(logits, shape[:-1] + (VOCAB,))
        module, variables = embed_module(table_VxD)
        theirs = self.variant(lambda v, x: module.apply(v, x, method="attend"))(variables, x)
        np.testing.assert_array_equal(logits, theirs)  # the same computation, so the same bits
        expected = np.asarray(x, np.float64) @ np.asarray(table_VxD, np.float64).T
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)

    def test_attend_refuses_wrong_dim(self):
        with pytest.raises(ValueError, match=rf"end in the table's dimension {DIM}; got shape"):
            attend(_table(), jnp.zeros((2, DIM + 1)))


def test_count_params_over_a_tree():
    tree = {"a": jnp.zeros((3, 4)), "b": [jnp.zeros(5), jax.ShapeDtypeStruct((2, 2), jnp.int32)]}
    assert count_params(tree) == 12 + 5 + 4


def test_docstring_examples_run():
    result = doctest.testmod(jaxembed_embed, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_learned_table_into_linen_and_nnx_embed(dtype):
    # A learned table (a GPT-2 run's table.npy, say) put into flax's two Embed modules.
    from flax import nnx

    from jaxembed.embed import embed_module, nnx_embed

    table_VxD = jax.random.normal(jax.random.key(3), (50, 6), dtype)
    ids_BxT = jax.random.randint(jax.random.key(4), (3, 7), 0, 50)
    module, variables = embed_module(table_VxD)
    np.testing.assert_array_equal(module.apply(variables, ids_BxT), lookup(table_VxD, ids_BxT))
    embed = nnx_embed(table_VxD)
    assert isinstance(embed, nnx.Embed)
    np.testing.assert_array_equal(embed(ids_BxT), lookup(table_VxD, ids_BxT))
    x_D = jnp.ones(6, dtype)
    np.testing.assert_array_equal(embed.attend(x_D), table_VxD @ x_D)
    # the table is the module's trainable parameter
    grads = nnx.grad(lambda m: m(ids_BxT).astype(jnp.float32).sum())(embed)
    assert grads.embedding[...].shape == (50, 6)
