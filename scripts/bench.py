"""Times manual_bp's gradients against jax.grad, NumPy and PyTorch.

On each rung of a ladder of networks, from the document's 5-4-3-1 with
m = 2 to three layers of 2048 with m = 2048, in one process and on the same
float32 inputs, it times

    manual_bp.grad             the hand-written backward, fused delta[L]
    manual_bp.grad (document)  the same with dA[L] * sigmoid'(Z[L]) as written
    flat_grad                  the fast path: packed parameters and gradients
    jax.grad                   jit-compiled autodiff of the same cost
    NumPy                      the document's backward written in NumPy here
    PyTorch                    autograd, when torch is installed

with sigmoid hidden layers and the log-sigmoid (cross-entropy) cost. The
contenders take turns, each warmed up first; every sample is a batch of
calls that each wait for their result (block_until_ready), and a time is
the median of the samples. It reports each time, its ratio to each peer,
the GFLOP/s achieved (the matrix products of the forward and backward
passes, 2 n[l] n[l-1] m each, three per layer but two for layer 1, whose
dA[0] nobody needs) against the machine's matrix-product peak measured in
the same run, the cores each kept busy, the spread of its samples, the
largest difference of the gradients from jax.grad's, and the compiled
temporary memory (XLA's memory analysis) of manual_bp.grad, flat_grad and
jax.grad. On the document's rung it also times a call with no gradient in
it (the floor of any call) and one training step four ways; on the others,
the gradient's matrix products alone in one jitted program (what any
gradient built on XLA's products must take). Under each
table it prints the targets, and beside each target not met the
measurements of the same run that bound it.

    python scripts/bench.py --json bench.json --plot bench.png

prints one line of progress per step on stderr and, on stdout (a run on a
quiet two-core machine; numbers vary by 10 to 20 % from run to run)

    peak 295.5 GFLOP/s; 2048^2 product: jax.jit 235.8, NumPy 284.8, PyTorch 295.5

    ## 5-4-3-1, m = 2

    | contender | time | spread | /jax.grad | /NumPy | /PyTorch | GFLOP/s | ...
    |---|---|---|---|---|---|---|---|---|---|
    | manual_bp.grad | 57.1 us | 10% | 1.21 | 0.91 | 0.17 | 0.01 | ...
    | flat_grad | 15.8 us | 17% | 0.33 | 0.25 | 0.05 | 0.02 | ...
    | jax.grad | 47.3 us | 14% | 1.00 | 0.75 | 0.14 | 0.01 | ...
    | call floor (3 in, 1 out) | 13.5 us | 9% | 0.29 | 0.21 | 0.04 | 0.00 | ...
    ...

    target: manual_bp.grad / fastest peer 1.206 <= 1: not met (fastest: ...
    target: flat_grad / jax.grad 0.33 <= 0.3: not met (a call reading the ...
    target: memory manual_bp.grad 88 B <= jax.grad 200 B: met (flat_grad 392 B)

    ### one training step, 5-4-3-1, m = 2
    ...

    ## 784-128-64-1, m = 256
    ...

and writes every number to bench.json and the ratios to jax.grad to
bench.png; docs/benchmarks.md explains the columns and shows a whole run.
--quick leaves out 2048-2048-2048-1 and takes fewer samples (under a
minute against about three). PyTorch and matplotlib are optional;
without them their column or the plot is skipped with a message.
"""

import argparse
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import manual_bp as mb
from manual_bp._arguments import check_outputs, positive_int
from manual_bp._flat import _ONE_THREAD, flat_grad, flat_sgd_step, pack, unpack
from manual_bp._io import write_atomically

LADDER = [  # (label, widths n[0..L], m)
    ("5-4-3-1", (5, 4, 3, 1), 2),  # the document's network
    ("784-128-64-1", (784, 128, 64, 1), 256),
    ("64-[64 x 10]-1", (64,) * 11 + (1,), 64),  # ten hidden layers of 64
    ("1024-1024-1024-1", (1024, 1024, 1024, 1), 1024),
    ("2048-2048-2048-1", (2048, 2048, 2048, 1), 2048),
]
QUICK = 4  # --quick runs the first four rungs
PEAK_RUNGS = LADDER[-2:]  # where manual_bp.grad should reach PEAK_TARGET
PEAK_N = 2048  # the peak is an (n, n) @ (n, n) float32 product
PEERS = ("jax.grad", "NumPy", "PyTorch")
OURS = ("manual_bp.grad", "manual_bp.grad (document)", "flat_grad")
# On the document's rung: a jitted program taking flat_grad's three arrays,
# reading every entry (as any gradient must) and returning one (P,) vector,
# with no gradient in it, compiled with the same options as flat_grad
# there. Its time is what any such call costs. (Reading one entry of X and
# of Y instead of all of them was 0.05 of jax.grad's time cheaper: the two
# sums are kernels of their own.)
FLOOR = "call floor (3 in, 1 out)"
# On every other rung: one jitted program computing only the matrix products
# a gradient needs (those matmul_flops counts) on the A[l-1] and delta[l] of
# this rung's own derivation, with no elementwise work. It bounds any
# gradient built on XLA's products: manual_bp.grad cannot beat it by much.
PRODUCTS = "XLA products alone"
TINY_TARGET = 0.3  # flat_grad / jax.grad at 5-4-3-1, m = 2
PEAK_TARGET = 0.9  # manual_bp.grad's share of the peak on the two largest rungs


def problem(
    sizes: tuple[int, ...], m: int, seed: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Seeded float32 NumPy parameters [(W[l], b[l])], X (n[0], m), Y (n[L], m)."""
    rng = np.random.default_rng(seed)
    params = [
        (
            (rng.standard_normal((n, n_prev)) / np.sqrt(n_prev)).astype(np.float32),
            (0.1 * rng.standard_normal((n, 1))).astype(np.float32),
        )
        for n_prev, n in itertools.pairwise(sizes)
    ]
    X = rng.standard_normal((sizes[0], m)).astype(np.float32)
    Y = rng.integers(0, 2, (sizes[-1], m)).astype(np.float32)
    return params, X, Y


def matmul_flops(sizes: tuple[int, ...], m: int) -> int:
    """Multiply-adds times two of the products one gradient needs.

    Layer l's forward W[l] @ A[l-1], dW[l] = delta[l] @ A[l-1].T and
    dA[l-1] = W[l].T @ delta[l] are 2 n[l] n[l-1] m each; layer 1 has no
    dA[0].
    """
    return sum(
        2 * n * n_prev * m * (2 if l == 1 else 3)
        for l, (n_prev, n) in enumerate(itertools.pairwise(sizes), start=1)
    )


def _sigmoid_(Z: np.ndarray) -> np.ndarray:
    """sigmoid(Z) = 1 / (1 + exp(-Z)), computed in Z's own memory."""
    with np.errstate(over="ignore"):  # exp(-Z) = inf gives sigmoid 0: right
        np.negative(Z, out=Z)
        np.exp(Z, out=Z)
    Z += 1
    return np.reciprocal(Z, out=Z)


def numpy_grad(
    params: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray, Y: np.ndarray
) -> list[np.ndarray]:
    """The document's forward and backward passes written in NumPy.

    Sigmoid hidden and output layers, delta[L] = A[L] - Y, and
    delta[l] = (W[l+1].T @ delta[l+1]) * A[l] (1 - A[l]) below it.

    Returns:
      [dW[1], db[1], ..., dW[L], db[L]] in the document's shapes.
    """
    L, m = len(params), X.shape[1]
    A = [X]
    for W, b in params:
        Z = W @ A[-1]
        Z += b
        A.append(_sigmoid_(Z))  # A[l] = sigmoid(Z[l]), Z[l] is not kept

    grads: list[np.ndarray] = [None] * (2 * L)
    delta = A[L] - Y  # dA[L] * sigmoid'(Z[L]) simplified
    for l in range(L, 0, -1):
        dW = delta @ A[l - 1].T
        dW *= 1 / m
        grads[2 * l - 2] = dW
        grads[2 * l - 1] = delta.sum(axis=1, keepdims=True) / m
        if l > 1:
            dA = params[l - 1][0].T @ delta  # dA[l-1]
            dA *= A[l - 1]
            dA *= 1 - A[l - 1]  # times sigmoid'(Z[l-1]) = A (1 - A)
            delta = dA
    return grads


def torch_contender(
    params: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray, Y: np.ndarray
) -> Callable[[], Any] | None:
    """A call computing PyTorch autograd's gradients, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    leaves = [torch.tensor(a, requires_grad=True) for W, b in params for a in (W, b)]
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    L, m = len(params), X.shape[1]

    def run() -> Any:
        A = tX
        for l in range(L):
            Z = leaves[2 * l] @ A + leaves[2 * l + 1]
            A = torch.sigmoid(Z) if l < L - 1 else Z
        C = torch.nn.functional.binary_cross_entropy_with_logits(A, tY, reduction="sum")
        return torch.autograd.grad(C / m, leaves)

    return run


def products_alone(
    Ws: tuple[jax.Array, ...], As: tuple[jax.Array, ...], deltas: tuple[jax.Array, ...]
) -> tuple[jax.Array, ...]:
    """The gradient's matrix products and nothing else, one layer at a time.

    For layer l (Ws[l-1] = W[l], As[l-1] = A[l-1], deltas[l-1] = delta[l]):
    the forward W[l] @ A[l-1], dW[l]'s delta[l] @ A[l-1].T, and for l > 1
    dA[l-1] = W[l].T @ delta[l]; the products `matmul_flops` counts.
    """
    out = []
    for l, (W, A_prev, delta) in enumerate(zip(Ws, As, deltas, strict=True), start=1):
        out += [W @ A_prev, delta @ A_prev.T]
        if l > 1:
            out.append(W.T @ delta)
    return tuple(out)


def wait(out: Any) -> Any:
    """Blocks until every JAX array in `out` is computed."""
    return jax.block_until_ready(out)


def as_numpy(out: Any, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """[dW[1], db[1], ..., dW[L], db[L]] as NumPy arrays, from any contender."""
    if isinstance(out, jax.Array):  # flat_grad's (P,) buffer
        out = unpack(out, sizes)
    leaves = jax.tree.leaves(out)  # torch tensors are leaves too
    return [np.asarray(a.detach() if hasattr(a, "detach") else a) for a in leaves]


class Timing(NamedTuple):
    median_s: float  # median over the samples of seconds per call
    best_s: float  # the fastest sample's seconds per call
    cores: float  # median cores busy
    spread: float  # interquartile range of the samples over their median


def measure(
    calls: dict[str, Callable[[], Any]], rounds: int, sample_s: float, pause_s: float
) -> dict[str, Timing]:
    """The `Timing` of each contender: seconds per call and cores busy.

    Each contender is warmed up (compiled) and calibrated to a batch of
    calls lasting about `sample_s`; then, `rounds` times, each in turn
    (starting one further along each round) times one batch. Before each
    batch the process sleeps `pause_s`: the worker threads of the library
    that ran before (OpenBLAS, OpenMP, XLA's) spin for a while after their
    last task, and on a machine with few cores they would take the next
    contender's cores.

    "Cores busy" is the CPU time of the whole process (every thread) over
    the wall time of a batch: 1.0 for a library that computes on one core,
    up to the number of cores for one that uses them all.
    """
    batch = {}
    for name, call in calls.items():
        wait(call())
        wait(call())
        start = time.perf_counter()
        wait(call())
        batch[name] = max(1, math.ceil(sample_s / (time.perf_counter() - start)))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    cores: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            call, k = calls[name], batch[name]
            gc.collect()
            time.sleep(pause_s)
            gc.disable()
            cpu = time.process_time()
            start = time.perf_counter()
            for _ in range(k):
                wait(call())
            wall = time.perf_counter() - start
            cores[name].append((time.process_time() - cpu) / wall)
            samples[name].append(wall / k)
            gc.enable()
    return {
        name: Timing(
            statistics.median(samples[name]),
            min(samples[name]),
            statistics.median(cores[name]),
            _spread(samples[name]),
        )
        for name in calls
    }


def _spread(samples: list[float]) -> float:
    """(third quartile - first quartile) / median; 0 for a single sample."""
    if len(samples) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(samples)


def matmul_peak(rounds: int, pause_s: float, torch_available: bool) -> dict[str, float]:
    """GFLOP/s of an (n, n) @ (n, n) float32 product in each library."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((PEAK_N, PEAK_N)).astype(np.float32) for _ in "ab")
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    product = jax.jit(jnp.matmul)
    calls = {"jax.jit": lambda: product(ja, jb), "NumPy": lambda: a @ b}
    if torch_available:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        calls["PyTorch"] = lambda: ta @ tb
    # A peak is what the machine can reach: the fastest sample, not the median.
    times = measure(calls, rounds, 0.0, pause_s)
    return {name: 2 * PEAK_N**3 / t.best_s / 1e9 for name, t in times.items()}


def temp_bytes(jitted: Any, *args: Any) -> int:
    """XLA's temporary buffer size of the compiled program, in bytes."""
    return int(jitted.lower(*args).compile().memory_analysis().temp_size_in_bytes)


def run_rung(
    label: str,
    sizes: tuple[int, ...],
    m: int,
    rounds: int,
    sample_s: float,
    pause_s: float,
    peaks: dict[str, float],
) -> dict:
    """Times every contender on one network; returns the rung's record."""
    params_np, X_np, Y_np = problem(sizes, m)
    params = tuple(mb.Layer(jnp.asarray(W), jnp.asarray(b)) for W, b in params_np)
    X, Y = jnp.asarray(X_np), jnp.asarray(Y_np)
    flat = pack(params)
    reference = jax.jit(jax.grad(mb.cost), static_argnums=(3, 4))

    calls = {
        "manual_bp.grad": lambda: mb.grad(params, X, Y),
        "manual_bp.grad (document)": lambda: mb.grad(params, X, Y, form="document"),
        "flat_grad": lambda: flat_grad(flat, X, Y, sizes),
        "jax.grad": lambda: reference(params, X, Y, "sigmoid", "cross_entropy"),
        "NumPy": lambda: numpy_grad(params_np, X_np, Y_np),
    }
    torch_call = torch_contender(params_np, X_np, Y_np)
    if torch_call is not None:
        calls["PyTorch"] = torch_call

    tiny = tuple(sizes) == (5, 4, 3, 1) and m == 2
    if tiny:
        floor = jax.jit(
            lambda f, x, y: f + x.sum() + y.sum(), compiler_options=_ONE_THREAD
        )
        calls[FLOOR] = lambda: floor(flat, X, Y)
    else:
        d = mb.derivation(params, X, Y)
        L = len(sizes) - 1
        operands = (
            tuple(W for W, _ in params),
            tuple(d.A[l - 1] for l in range(1, L + 1)),
            tuple(d.delta[l] for l in range(1, L + 1)),
        )
        products = jax.jit(products_alone)
        calls[PRODUCTS] = lambda: products(*operands)

    expected = as_numpy(calls["jax.grad"](), sizes)
    diffs = {}
    for name, call in calls.items():
        if name in (FLOOR, PRODUCTS):
            diffs[name] = None  # not a gradient
            continue
        got = as_numpy(call(), sizes)
        diffs[name] = max(
            float(np.max(np.abs(g - e))) for g, e in zip(got, expected, strict=True)
        )
    measured = measure(calls, rounds, sample_s, pause_s)
    times = {name: t.median_s for name, t in measured.items()}

    flops = matmul_flops(sizes, m)
    rows = {}
    for name, (t, _, cores, spread) in measured.items():
        counted = 0 if name == FLOOR else flops
        rows[name] = {
            "time_s": t,
            "cores_busy": cores,
            "spread": spread,
            "ratio": {p: t / times[p] for p in PEERS if p in times},
            "gflops": counted / t / 1e9,
            "share_of_peak": counted / t / 1e9 / max(peaks.values()),
            "share_of_jax_product": counted / t / 1e9 / peaks["jax.jit"],
            "max_abs_diff": diffs[name],
        }
    flat_jit = jax.jit(flat_grad, static_argnums=3)
    memory = {
        "manual_bp.grad": temp_bytes(mb.grad, params, X, Y),
        "flat_grad": temp_bytes(flat_jit, flat, X, Y, sizes),
        "jax.grad": temp_bytes(reference, params, X, Y, "sigmoid", "cross_entropy"),
    }
    return {
        "label": label,
        "sizes": list(sizes),
        "m": m,
        "matmul_flops": flops,
        "contenders": rows,
        "temp_bytes": memory,
    }


def run_steps(rounds: int, sample_s: float, pause_s: float) -> dict:
    """Times one step of gradient descent on the document's network, m = 2.

    What a training loop written in Python calls once per step: jax.jit of
    jax.grad and the update W[l] -= lr dW[l] (one call, the parameters'
    tree in and out), flat_grad followed by a jitted update (two calls),
    and flat_sgd_step (one call), kept and donated. Every step feeds its
    result to the next, as a loop does.
    """
    sizes, m, lr = (5, 4, 3, 1), 2, 0.1
    params_np, X_np, Y_np = problem(sizes, m)
    params = tuple(mb.Layer(jnp.asarray(W), jnp.asarray(b)) for W, b in params_np)
    X, Y = jnp.asarray(X_np), jnp.asarray(Y_np)

    @jax.jit
    def autodiff_step(params: Any, X: jax.Array, Y: jax.Array) -> Any:
        grads = jax.grad(mb.cost)(params, X, Y)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    update = jax.jit(lambda flat, g: flat - lr * g)

    def looped(step: Callable[[Any], Any], start: Any) -> Callable[[], Any]:
        state = [start]

        def call() -> Any:
            state[0] = step(state[0])
            return state[0]

        return call

    calls = {
        "jax.grad + update, one jit": looped(lambda p: autodiff_step(p, X, Y), params),
        "flat_grad, then update": looped(
            lambda f: update(f, flat_grad(f, X, Y, sizes)), pack(params)
        ),
        "flat_sgd_step": looped(
            lambda f: flat_sgd_step(f, X, Y, sizes, lr), pack(params)
        ),
        "flat_sgd_step, donated": looped(
            lambda f: flat_sgd_step(f, X, Y, sizes, lr, donate=True), pack(params)
        ),
    }
    measured = measure(calls, rounds, sample_s, pause_s)
    base = measured["jax.grad + update, one jit"].median_s
    return {
        name: {"time_s": t.median_s, "spread": t.spread, "ratio": t.median_s / base}
        for name, t in measured.items()
    }


def steps_markdown(steps: dict) -> str:
    """The training-step table in Markdown."""
    lines = [
        "### one training step, 5-4-3-1, m = 2",
        "",
        "| step | time | spread | /jax.grad step |",
        "|---|---|---|---|",
    ]
    for name, row in steps.items():
        lines.append(
            f"| {name} | {_time(row['time_s'])} | {100 * row['spread']:.0f}% "
            f"| {row['ratio']:.2f} |"
        )
    return "\n".join(lines)


def targets(rung: dict, largest: bool, peaks: dict[str, float]) -> list[str]:
    """The speed targets on this rung, each with its measured value.

    A target that is not met is followed by the measurements that bound
    it, taken in the same run: how many cores the fastest peer and
    manual_bp.grad kept busy, what a call with no gradient in it costs, how
    fast XLA's own matrix product is, and how long the gradient's products
    alone take in XLA.
    """
    rows, mem = rung["contenders"], rung["temp_bytes"]
    ours = rows["manual_bp.grad"]
    fastest = min((p for p in PEERS if p in rows), key=lambda p: rows[p]["time_s"])
    ratio = ours["time_s"] / rows[fastest]["time_s"]
    line = f"target: manual_bp.grad / fastest peer {ratio:.3f} <= 1: {_met(ratio <= 1)}"
    if ratio > 1:
        line += (
            f" (fastest: {fastest}, {rows[fastest]['cores_busy']:.1f} cores busy; "
            f"manual_bp.grad {ours['cores_busy']:.1f}"
        )
        if fastest != "jax.grad":
            line += f"; jax.grad {rows['jax.grad']['cores_busy']:.1f}"
        spread = max(ours["spread"], rows[fastest]["spread"])
        if ratio - 1 <= spread:
            line += f"; within the samples' spread, {100 * spread:.0f}%"
        if PRODUCTS in rows and fastest != "jax.grad":
            alone = rows[PRODUCTS]["time_s"] / rows[fastest]["time_s"]
            line += f"; XLA's products alone take {alone:.2f} of {fastest}'s time"
        line += ")"
    out = [line]
    if FLOOR in rows:
        flat = rows["flat_grad"]["ratio"]["jax.grad"]
        line = (
            f"target: flat_grad / jax.grad {flat:.2f} <= {TINY_TARGET}: "
            f"{_met(flat <= TINY_TARGET)}"
        )
        if flat > TINY_TARGET:
            floor = rows[FLOOR]["ratio"]["jax.grad"]
            line += f" (a call reading the same arrays, no gradient: {floor:.2f})"
        out.append(line)
    if largest:
        share = ours["share_of_peak"]
        line = (
            f"target: manual_bp.grad at {100 * share:.0f}% of peak (and "
            f"{100 * ours['share_of_jax_product']:.0f}% of jax.jit's product) >= "
            f"{100 * PEAK_TARGET:.0f}%: {_met(share >= PEAK_TARGET)}"
        )
        if share < PEAK_TARGET:
            xla = peaks["jax.jit"] / max(peaks.values())
            line += f" (jax.jit's {PEAK_N}^2 product itself: {100 * xla:.0f}% of peak"
            if PRODUCTS in rows:
                alone = rows[PRODUCTS]["share_of_peak"]
                line += f"; the gradient's products alone: {100 * alone:.0f}%"
            line += ")"
        out.append(line)
    mine, theirs = mem["manual_bp.grad"], mem["jax.grad"]
    out.append(
        f"target: memory manual_bp.grad {_bytes(mine)} <= jax.grad "
        f"{_bytes(theirs)}: {_met(mine <= theirs)} (flat_grad "
        f"{_bytes(mem['flat_grad'])})"
    )
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _time(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.3f} s"


def _bytes(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def markdown(rung: dict, largest: bool, peaks: dict[str, float]) -> str:
    """The rung's table, its targets and its memory, in Markdown."""
    peers = [p for p in PEERS if p in rung["contenders"]]
    head = ["contender", "time", "spread", *(f"/{p}" for p in peers)]
    head += ["GFLOP/s", "% peak", "cores", "max diff"]
    lines = [
        f"## {rung['label']}, m = {rung['m']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, row in rung["contenders"].items():
        cells = [name, _time(row["time_s"]), f"{100 * row['spread']:.0f}%"]
        cells += [f"{row['ratio'][p]:.2f}" for p in peers]
        diff = row["max_abs_diff"]
        cells += [
            f"{row['gflops']:.2f}" if row["gflops"] < 10 else f"{row['gflops']:.1f}",
            f"{100 * row['share_of_peak']:.1f}",
            f"{row['cores_busy']:.1f}",
            "-" if diff is None else f"{diff:.1e}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *targets(rung, largest, peaks)])


def plot(rungs: list[dict], path: str) -> bool:
    """Bars of each contender's time over jax.grad's; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [n for n in (*OURS, "NumPy", "PyTorch") if n in rungs[0]["contenders"]]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rows = [r["contenders"][name] for r in rungs]
        ratios = [row["ratio"]["jax.grad"] for row in rows]
        # Half the interquartile range of the samples either side.
        errors = [
            ratio * row["spread"] / 2 for ratio, row in zip(ratios, rows, strict=True)
        ]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(rungs))]
        ax.bar(xs, ratios, width, yerr=errors, capsize=2, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ticks = [0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xticks(range(len(rungs)))
    ax.set_xticklabels([f"{r['label']}\nm = {r['m']}" for r in rungs], fontsize=8)
    ax.set_ylabel("time / jax.grad's time (lower is faster)")
    ax.set_title("manual_bp against jax.grad, NumPy and PyTorch (float32, CPU)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the first {QUICK} rungs and fewer samples, under a minute",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        help="samples per contender (default: 15, quick 5)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every number")
    parser.add_argument("--plot", metavar="FILE", help="PNG of the ratios to jax.grad")
    args = parser.parse_args(argv)
    check_outputs(
        parser,
        {
            "--json": (args.json, ".json", "bench.py writes JSON"),
            "--plot": (args.plot, ".png", "bench.py draws a PNG"),
        },
    )
    rounds = args.rounds or (5 if args.quick else 15)
    sample_s = 0.02 if args.quick else 0.05  # seconds of calls in one sample
    pause_s = 0.01 if args.quick else 0.05  # rest before each sample
    ladder = LADDER[:QUICK] if args.quick else LADDER

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
        print(
            "PyTorch is not installed: its contender is skipped "
            "(pip install torch==2.13.0 takes the CPU build)"
        )

    progress(f"measuring the {PEAK_N}x{PEAK_N} matmul peak ...")
    peaks = matmul_peak(rounds, pause_s, torch_version is not None)
    peak = max(peaks.values())
    each = ", ".join(f"{k} {v:.1f}" for k, v in peaks.items())
    print(f"peak {peak:.1f} GFLOP/s; {PEAK_N}^2 product: {each}")

    rungs, steps = [], None
    for i, (label, sizes, m) in enumerate(ladder):
        progress(f"rung {i + 1}/{len(ladder)}: {label}, m = {m} ...")
        rungs.append(run_rung(label, sizes, m, rounds, sample_s, pause_s, peaks))
        print()
        print(markdown(rungs[-1], (label, sizes, m) in PEAK_RUNGS, peaks))
        if i == 0:  # the document's rung
            progress("one training step on the document's rung ...")
            steps = run_steps(rounds, sample_s, pause_s)
            print()
            print(steps_markdown(steps))
        sys.stdout.flush()

    if args.json:
        record = {
            "command": " ".join(["python", *sys.argv]),
            "machine": {
                "platform": platform.platform(),
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "jax": jax.__version__,
                "numpy": np.__version__,
                "torch": torch_version,
                "devices": [str(d) for d in jax.devices()],
            },
            "rounds": rounds,
            "sample_s": sample_s,
            "pause_s": pause_s,
            "matmul_peak_gflops": peaks,
            "rungs": rungs,
            "training_step": steps,
        }
        text = json.dumps(record, indent=1).encode()
        write_atomically(args.json, lambda file: file.write(text))
        progress(f"wrote {args.json}")
    if args.plot:
        if plot(rungs, args.plot):
            progress(f"wrote {args.plot}")
        else:
            print("matplotlib is not installed: no plot written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
