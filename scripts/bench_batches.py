"""Per-example gradients, norms and clipped gradients: ours against vmap(grad).

Times, in one process, on the same float32 inputs, on the CPU, each
quantity computed two ways: by `manual_bp` from delta[l] and A[l-1] of one
backward pass ("ours"), and by autodiff, `jax.vmap(jax.grad(cost of one
column))`, with the norms, the clipping and the mean taken of its result
("vmap route"); and one plain `manual_bp.grad` against `jax.grad` for
reference. Networks (5, 4, 3, 1) m = 2, (784, 128, 64, 1) m = 256 and
(1024, 1024, 1024, 1) m = 1024; the clip norm is the median per-example
norm (about half the examples clipped), with no noise.

    python scripts/bench_batches.py --quick --json bench.json

prints the settings, one line per network as it is measured, then (the
numbers here are placeholders)

    | network | m | quantity | ours (ms) | vmap route (ms) | speed-up | max abs diff |
    |---|---|---|---|---|---|---|
    | 784-128-64-1 | 256 | per-example gradients | 40 | 44 | 1.1x | 1.2e-07 |
    | 784-128-64-1 | 256 | per-example norms | 1 | 25 | 25x | 7.2e-07 |
    ...

then a note per network (clip norm, parameter count, anything skipped or
chunked) and the two speed targets with "met" or "NOT met":

    target, clipped gradient at 784-128-64-1, m = 256: vmap route / ours
    = 70x, at least 30x: met
    target, per-example norms at 784-128-64-1, m = 256: ours /
    manual_bp.grad = 0.8x, at most 1.5x: met

Method: the quantities are timed one group at a time (ours and its vmap
route; per-example norms and manual_bp.grad for the second target). In a
group every contender is compiled and run once, then each repeat runs all
of them in a rotating order, each timed call (until `block_until_ready`)
right after an untimed one of the same contender, so that each is timed
warm; the table gives medians. `--quick` runs 3 repeats (instead of 7) and
the largest network with m = 128.

The clipped vmap route sums s_i g_i as one contraction over the examples
(`jnp.tensordot(s, g, 1)`): on XLA's CPU backend, scaling every g_i and
then taking the mean measured about 8 times slower, which would flatter
ours. The row "clipped gradient, two-pass route" is a cleverer autodiff
route: the norms by vmap(grad), then `jax.grad` of the s-weighted sum of
the per-example costs, one more backward pass with no per-example product.

Memory: the vmap route forms every example's gradient, m copies of the
parameters (at 1024-1024-1024-1, m = 1024, that is 1024 x 2.1M floats,
8.6 GB). What would hold more than `--max-gb` (default 4) at once is
changed, and a note says how. Per-example gradients, whose result is that
large on both sides (and both are held to compare them), are skipped. The
norms and the clipped gradients, whose results are small, take the vmap
route over chunks of k examples (`jax.lax.map`, `jax.lax.scan`), k the
largest power of two dividing m with a chunk under a quarter of the
budget. Ours forms no per-example gradient for them.
"""

import argparse
import functools
import itertools
import json
import os
import platform
import statistics
import time

import jax

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_numpy_rank_promotion", "raise")  # as the test suite

import jax.numpy as jnp  # noqa: E402  (after the settings above)
import numpy as np  # noqa: E402

import manual_bp as mb  # noqa: E402
from manual_bp._arguments import (  # noqa: E402
    check_outputs,
    positive_float,
    positive_int,
)
from manual_bp._io import write_atomically  # noqa: E402
from manual_bp._per_example import (  # noqa: E402
    clipped_grad,
    per_example_grads,
    per_example_norms,
)

NETWORKS = ((5, 4, 3, 1), (784, 128, 64, 1), (1024, 1024, 1024, 1))
M = (2, 256, 1024)
QUICK_M = (2, 256, 128)  # --quick: the largest network with fewer examples
TARGET_NETWORK = (784, 128, 64, 1)  # where the two speed targets are set
CLIPPED_SPEEDUP = 30.0  # clipped gradient: vmap route / ours, at least
NORMS_OVER_GRAD = 1.5  # per-example norms: ours / manual_bp.grad, at most
QUANTITIES = {
    "grads": "per-example gradients",
    "norms": "per-example norms",
    "clipped": "clipped gradient",
    "two_pass": "clipped gradient, two-pass route",
    "plain": "mean gradient (vmap column: jax.grad)",
}
CHUNKED = ("norms", "clipped", "two_pass")  # may take the vmap route in chunks


# The autodiff routes.


def example_cost(params, x, y):
    """The cost of one example: column x (n[0],), labels y (n[L],)."""
    return mb.cost(params, x[:, None], y[:, None])


vmap_grads = jax.vmap(jax.grad(example_cost), in_axes=(None, 1, 1))
vmap_costs = jax.vmap(example_cost, in_axes=(None, 1, 1))


def norms_of(grads):
    """(m,) the global L2 norm of each example's gradient, over every leaf."""
    leaves = jax.tree.leaves(grads)
    m = leaves[0].shape[0]
    return jnp.sqrt(sum(jnp.sum(g.reshape(m, -1) ** 2, axis=1) for g in leaves))


def clipped_sum(params, X, Y, clip_norm):
    """sum_i min(1, C / |g_i|) g_i over the columns of X, by vmap(grad)."""
    grads = vmap_grads(params, X, Y)
    s = jnp.minimum(1.0, clip_norm / norms_of(grads))
    return jax.tree.map(lambda g: jnp.tensordot(s, g, 1), grads)


def chunks(A, k):
    """(n, m) -> (m // k, n, k): the columns in consecutive groups of k."""
    n, m = A.shape
    return A.reshape(n, m // k, k).transpose(1, 0, 2)


@functools.partial(jax.jit, static_argnames="k")
def vmap_norms(params, X, Y, k):
    """norms_of(vmap_grads(...)), over chunks of k examples when k < m."""
    if k == X.shape[1]:
        return norms_of(vmap_grads(params, X, Y))
    norms = jax.lax.map(
        lambda xy: norms_of(vmap_grads(params, *xy)), (chunks(X, k), chunks(Y, k))
    )
    return norms.reshape(-1)


@functools.partial(jax.jit, static_argnames="k")
def vmap_clipped(params, X, Y, clip_norm, k):
    """The mean of the clipped per-example gradients, k examples at a time."""
    m = X.shape[1]
    if k == m:
        total = clipped_sum(params, X, Y, clip_norm)
    else:

        def step(acc, xy):
            return jax.tree.map(jnp.add, acc, clipped_sum(params, *xy, clip_norm)), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        total, _ = jax.lax.scan(step, zeros, (chunks(X, k), chunks(Y, k)))
    return jax.tree.map(lambda t: t / m, total)


@functools.partial(jax.jit, static_argnames="k")
def two_pass_clipped(params, X, Y, clip_norm, k):
    """The norms by vmap(grad), then grad of (1/m) sum_i s_i C_i."""
    s = jax.lax.stop_gradient(jnp.minimum(1.0, clip_norm / vmap_norms(params, X, Y, k)))
    return jax.grad(lambda p: jnp.mean(s * vmap_costs(p, X, Y)))(params)


jit_vmap_grads = jax.jit(vmap_grads)
autodiff_grad = jax.jit(jax.grad(mb.cost))


# Measuring.


def problem(sizes, m, seed=0):
    """Xavier-scaled W, small b, X from N(0, 1) and 0/1 labels, all float32."""
    rng = np.random.default_rng(seed)
    params = tuple(
        mb.Layer(
            jnp.asarray(rng.normal(size=(n, n_prev)) * np.sqrt(2 / (n + n_prev)), "f4"),
            jnp.asarray(0.1 * rng.normal(size=(n, 1)), "f4"),
        )
        for n_prev, n in itertools.pairwise(sizes)
    )
    X = jnp.asarray(rng.normal(size=(sizes[0], m)), "f4")
    Y = jnp.asarray(rng.integers(0, 2, size=(sizes[-1], m)), "f4")
    return params, X, Y


def max_abs_diff(a, b):
    """max |a - b| over every leaf, in float64."""
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def median_ms(contenders, repeats):
    """Runs each contender once (compiling it), then times them in turn.

    Each timed call follows an untimed call of the same contender, so that
    each is measured warm, as in a training loop that calls one of them
    over and over, rather than right after the other has flushed the
    caches (a vmap route moves hundreds of megabytes per call).

    Args:
      contenders: name -> a function of no argument returning arrays.
      repeats: the timed runs of each; the order rotates every repeat.

    Returns:
      ({name: median milliseconds}, {name: the first call's result}).
    """
    results = {name: jax.block_until_ready(f()) for name, f in contenders.items()}
    names = list(contenders)
    times = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            jax.block_until_ready(contenders[name]())
            start = time.perf_counter()
            jax.block_until_ready(contenders[name]())
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}, results


def chunk_size(m, per_example_bytes, budget):
    """The largest power of two dividing m whose chunk fits budget / 4."""
    k = m & -m
    while k > 1 and k * per_example_bytes > budget / 4:
        k //= 2
    return k


def bench_network(sizes, m, repeats, budget):
    """Times every quantity at one network.

    Returns:
      (rows, notes, per-example norms' time over manual_bp.grad's).
    """
    params, X, Y = problem(sizes, m)
    name = "-".join(map(str, sizes))
    P = sum(W.size + b.size for W, b in params)
    per_example_bytes = 4 * P  # one example's gradient in float32
    all_bytes = m * per_example_bytes
    C = float(np.median(per_example_norms(params, X, Y)))
    notes = [f"clip norm {C:.4g} (the median per-example norm), P = {P} parameters"]
    k = m if all_bytes <= budget else chunk_size(m, per_example_bytes, budget)
    if k < m:
        notes.append(
            f"norms and clipped gradients: the vmap route runs over {m // k} "
            f"chunks of {k} examples ({k * per_example_bytes / 1e9:.2f} GB "
            f"each); all m at once would hold {all_bytes / 1e9:.1f} GB"
        )

    ours = {
        "grads": lambda: per_example_grads(params, X, Y),
        "norms": lambda: per_example_norms(params, X, Y),
        "clipped": lambda: clipped_grad(params, X, Y, C),
        "two_pass": lambda: clipped_grad(params, X, Y, C),
        "plain": lambda: mb.grad(params, X, Y),
    }
    route = {
        "grads": lambda: jit_vmap_grads(params, X, Y),
        "norms": lambda: vmap_norms(params, X, Y, k),
        "clipped": lambda: vmap_clipped(params, X, Y, C, k),
        "two_pass": lambda: two_pass_clipped(params, X, Y, C, k),
        "plain": lambda: autodiff_grad(params, X, Y),
    }
    if 2 * all_bytes > budget:
        del ours["grads"], route["grads"]
        notes.append(
            f"per-example gradients skipped: each side's result is m x P floats "
            f"= {all_bytes / 1e9:.1f} GB and both are held to compare them, "
            f"over --max-gb {budget / 1e9:g}"
        )

    start = time.perf_counter()
    rows = []
    for key, quantity in QUANTITIES.items():
        row = dict(network=list(sizes), m=m, quantity=quantity, route_chunk=None)
        row.update(ours_ms=None, route_ms=None, speedup=None, max_abs_diff=None)
        if key in ours:
            ms, results = median_ms({"ours": ours[key], "route": route[key]}, repeats)
            row.update(ours_ms=ms["ours"], route_ms=ms["route"])
            row["speedup"] = ms["route"] / ms["ours"]
            row["max_abs_diff"] = max_abs_diff(results["ours"], results["route"])
            del results  # per-example gradients can be large
            if key in CHUNKED:
                row["route_chunk"] = k
        rows.append(row)
    ms, _ = median_ms({"norms": ours["norms"], "grad": ours["plain"]}, repeats)
    print(
        f"{name}, m = {m}: measured in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    return rows, notes, ms["norms"] / ms["grad"]


def fmt(value, spec):
    return "skipped" if value is None else format(value, spec)


def table(rows):
    """The Markdown table of the measured rows."""
    lines = [
        "| network | m | quantity | ours (ms) | vmap route (ms) | speed-up "
        "| max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        route = fmt(r["route_ms"], ".3g")
        if r["route_chunk"] is not None and r["route_chunk"] < r["m"]:
            route += f" (chunks of {r['route_chunk']})"
        speedup = fmt(r["speedup"], ".3g") + ("" if r["speedup"] is None else "x")
        lines.append(
            f"| {'-'.join(map(str, r['network']))} | {r['m']} | {r['quantity']} "
            f"| {fmt(r['ours_ms'], '.3g')} | {route} | {speedup} "
            f"| {fmt(r['max_abs_diff'], '.1e')} |"
        )
    return "\n".join(lines)


def targets(rows, norms_over_grad):
    """The two speed targets at TARGET_NETWORK: [{"target", "met"}]."""
    name = "-".join(map(str, TARGET_NETWORK))
    found = []
    for r in rows:
        if (
            tuple(r["network"]) == TARGET_NETWORK
            and r["quantity"] == "clipped gradient"
        ):
            x = r["speedup"]
            found.append(
                {
                    "target": f"clipped gradient at {name}, m = {r['m']}: vmap "
                    f"route / ours = {x:.3g}x, at least {CLIPPED_SPEEDUP:g}x",
                    "met": x >= CLIPPED_SPEEDUP,
                }
            )
    if TARGET_NETWORK in norms_over_grad:
        m, x = norms_over_grad[TARGET_NETWORK]
        found.append(
            {
                "target": f"per-example norms at {name}, m = {m}: ours / "
                f"manual_bp.grad = {x:.3g}x, at most {NORMS_OVER_GRAD:g}x",
                "met": x <= NORMS_OVER_GRAD,
            }
        )
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 repeats, m = 128 for the largest"
    )
    parser.add_argument(
        "--repeats", type=positive_int, help="timed runs (default 7, quick 3)"
    )
    parser.add_argument(
        "--max-gb",
        type=positive_float,
        default=4.0,
        help="memory a route may hold at once, in GB (default 4)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    check_outputs(
        parser, {"--json": (args.json, ".json", "bench_batches.py writes JSON")}
    )
    repeats = args.repeats if args.repeats is not None else 3 if args.quick else 7

    device = jax.devices()[0]
    print(
        f"jax {jax.__version__}, {device.platform} ({os.cpu_count()} CPUs, "
        f"{platform.machine()}), float32, medians of {repeats} repeats"
    )
    rows, notes, norms_over_grad = [], [], {}
    for sizes, m in zip(NETWORKS, QUICK_M if args.quick else M, strict=True):
        measured, network_notes, ratio = bench_network(
            sizes, m, repeats, args.max_gb * 1e9
        )
        rows += measured
        norms_over_grad[sizes] = (m, ratio)
        notes += [f"{'-'.join(map(str, sizes))}, m = {m}: {n}" for n in network_notes]

    found = targets(rows, norms_over_grad)
    print()
    print(table(rows))
    print()
    print("\n".join(notes))
    print()
    for t in found:
        print(f"target, {t['target']}: {'met' if t['met'] else 'NOT met'}")
    if args.json:
        record = {
            "jax": jax.__version__,
            "platform": device.platform,
            "cpus": os.cpu_count(),
            "repeats": repeats,
            "max_gb": args.max_gb,
            "rows": rows,
            "norms_over_grad": [
                {"network": list(s), "m": m, "ratio": x}
                for s, (m, x) in norms_over_grad.items()
            ],
            "targets": found,
            "notes": notes,
        }
        text = json.dumps(record, indent=2).encode()
        write_atomically(args.json, lambda file: file.write(text))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
