"""Shared test settings: silent broadcasting fails, and every test runs on CPU in float32."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
