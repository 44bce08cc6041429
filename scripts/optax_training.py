"""Optax's Adam fed by manual_bp's hand-written gradients, against jax.grad.

Trains the same network twice on the built-in breast cancer data
(standardised, full batch, float64): once with `manual_bp.grad` and once
with `jax.grad` of the same cost, both through one optax optimiser. The
hand-written gradients are an ordinary pytree in the parameters' structure,
so optax takes them as they are. After every step the two parameter sets
are compared; they must agree within `manual_bp.tolerance(float64)`.

    python scripts/optax_training.py

prints

    Adam (lr 0.01), 200 steps, widths 30,16,1, tanh, m = 569, float64
    step    1: C = 0.7944 (manual_bp)  0.7944 (jax.grad)  max |diff| 2.776e-17
    step   50: C = 0.0588 (manual_bp)  0.0588 (jax.grad)  max |diff| 4.441e-16
    ...
    step  200: C = 0.0289 (manual_bp)  0.0289 (jax.grad)  max |diff| 1.277e-15
    the parameters agree after 200 steps (within rtol 1e-12 and atol 1e-14)

C is the cost before each step; max |diff| is the largest difference
between the two routes' parameters after it.

Exit status 0 when they agree, 1 when they do not; it skips (status 0) with
a message when optax is not installed.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import manual_bp as mb
from manual_bp._datasets import load_breast_cancer
from manual_bp._train import standardization, standardize

STEPS = 200
LEARNING_RATE = 0.01
HIDDEN = (16,)
ACTIVATION = "tanh"
REPORT_EVERY = 50


def main() -> int:
    try:
        import optax
    except ImportError:
        print("optax is not installed (pip install optax); skipping this example")
        return 0
    jax.config.update("jax_enable_x64", True)

    X, Y = load_breast_cancer(jnp.float64)
    X = standardize(X, standardization(X))
    sizes = (X.shape[0], *HIDDEN, Y.shape[0])
    params = mb.init(sizes, jax.random.key(0), "xavier", dtype=jnp.float64)
    optimiser = optax.adam(LEARNING_RATE)

    def make_step(gradient):
        @jax.jit
        def step(params, state):
            C = mb.cost(params, X, Y, ACTIVATION)
            updates, state = optimiser.update(gradient(params), state, params)
            return optax.apply_updates(params, updates), state, C

        return step

    manual = make_step(lambda p: mb.grad(p, X, Y, ACTIVATION))
    autodiff = make_step(lambda p: jax.grad(mb.cost)(p, X, Y, ACTIVATION))

    rtol, atol = mb.tolerance(jnp.float64)
    widths = ",".join(map(str, sizes))
    print(
        f"Adam (lr {LEARNING_RATE}), {STEPS} steps, widths {widths}, "
        f"{ACTIVATION}, m = {X.shape[1]}, float64"
    )
    p_manual, s_manual = params, optimiser.init(params)
    p_auto, s_auto = params, optimiser.init(params)
    for t in range(1, STEPS + 1):
        p_manual, s_manual, C_manual = manual(p_manual, s_manual)
        p_auto, s_auto, C_auto = autodiff(p_auto, s_auto)
        diff = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(
                jax.tree.leaves(p_manual), jax.tree.leaves(p_auto), strict=True
            )
        )
        if t == 1 or t % REPORT_EVERY == 0:
            print(
                f"step {t:4d}: C = {float(C_manual):.4f} (manual_bp)  "
                f"{float(C_auto):.4f} (jax.grad)  max |diff| {diff:.3e}"
            )

    agree = all(
        np.allclose(a, b, rtol=rtol, atol=atol)
        for a, b in zip(jax.tree.leaves(p_manual), jax.tree.leaves(p_auto), strict=True)
    )
    verdict = "agree" if agree else "DIFFER"
    print(
        f"the parameters {verdict} after {STEPS} steps (within rtol {rtol:g} "
        f"and atol {atol:g})"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
