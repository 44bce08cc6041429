"""Test settings: float64 available, and no silent rank promotion.

Both must be set before any array is made, hence here.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
