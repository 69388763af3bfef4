"""Shared test settings: strict shapes, as equinox does."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
