"""The `manual-bp` command line.

    manual-bp example                 # the document's 5-4-3-1 example, m = 2
    manual-bp init --layers 5,4,3,1 --out params.npz
    manual-bp grad --params params.npz --data data.csv --out grads.npz
    manual-bp check --layers 5,4,3,1 --activation tanh --m 8
    manual-bp example --format latex > example.tex
    manual-bp draw --layers 5,4,3,1 --out net.png
    manual-bp train --data breast-cancer --plot curves.png

Exit status: 0 when the hand-written gradients match jax.grad (for check:
every quantity agrees with autodiff and finite differences), 1 when they do
not, 2 for bad input or a network too large for the machine's memory
(nothing is written then).
"""

import argparse
import itertools
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from manual_bp._activations import ACTIVATIONS
from manual_bp._api import derivation, value_and_grad
from manual_bp._arguments import layer_sizes, positive_float, positive_int, seed
from manual_bp._backward import FORMS
from manual_bp._check import compare, tolerance
from manual_bp._checker import FD_CHOICES, check
from manual_bp._cli_train import PLOT_EXTRA, add_train_parser
from manual_bp._costs import COSTS, cost_of_output
from manual_bp._draw import draw_network
from manual_bp._example import DOCUMENT_M, DOCUMENT_SIZES, example_problem
from manual_bp._io import (
    InputError,
    check_output_paths,
    check_suffix,
    load_data,
    load_params,
    save_grads,
    save_params,
)
from manual_bp._memory import advice, check_memory
from manual_bp._mistakes import MISTAKES, mistaken_derivation
from manual_bp._params import DEFAULT_SCALE, SCHEMES, Layer, check_shapes, init
from manual_bp._render import RenderSettings, render_latex, render_markdown

DTYPES = ("float32", "float64")
FORMATS = ("text", "markdown", "latex")
CHECK_M = 8  # check's examples on its random network


def walkthrough(
    params: Any, X: Any, Y: Any, activation: str, form: str, cost: str
) -> dict:
    """Every matrix of one cycle, named and ordered as the document has them."""
    d = derivation(params, X, Y, activation, form, cost)
    L = len(params)
    entries = [("A[0]", "(n[0], m)", "the input, one example per column", d.A[0])]
    entries.append(("Y", "(n[L], m)", "the labels", Y))
    for l, (W, b) in enumerate(params, start=1):
        entries.append((f"W[{l}]", f"(n[{l}], n[{l - 1}])", "weights", W))
        entries.append((f"b[{l}]", f"(n[{l}], 1)", "bias, broadcast over columns", b))
    for l in range(1, L + 1):
        g = "sigmoid" if l == L else activation
        entries.append(
            (f"Z[{l}]", f"(n[{l}], m)", f"W[{l}] @ A[{l - 1}] + b[{l}]", d.Z[l])
        )
        entries.append((f"A[{l}]", f"(n[{l}], m)", f"{g}(Z[{l}])", d.A[l]))
    C = cost_of_output(d.Z[L], Y, cost)
    if cost == "quadratic":
        dA_L = f"A[{L}] - Y"
    else:
        dA_L = f"-Y / A[{L}] + (1 - Y) / (1 - A[{L}])"
    entries.append((f"dA[{L}]", f"(n[{L}], m)", dA_L, d.dA[L]))
    for l in range(L, 0, -1):
        if l == L and form == "fused" and cost == "cross_entropy":
            how = f"A[{L}] - Y  (dA[{L}] * sigmoid'(Z[{L}]) simplified)"
        elif l == L:
            how = f"dA[{L}] * sigmoid'(Z[{L}])"
        else:
            how = f"dA[{l}] * g'(Z[{l}])"
        entries.append((f"delta[{l}]", f"(n[{l}], m)", how, d.delta[l]))
        entries.append(
            (
                f"dW[{l}]",
                f"(n[{l}], n[{l - 1}])",
                f"delta[{l}] @ A[{l - 1}].T / m",
                d.dW[l],
            )
        )
        entries.append(
            (f"db[{l}]", f"(n[{l}], 1)", f"row sums of delta[{l}] / m", d.db[l])
        )
        if l > 1:
            entries.append(
                (
                    f"dA[{l - 1}]",
                    f"(n[{l - 1}], m)",
                    f"W[{l}].T @ delta[{l}]",
                    d.dA[l - 1],
                )
            )
    grads = tuple(Layer(d.dW[l], d.db[l]) for l in range(1, L + 1))
    return {"entries": entries, "cost": float(C), "grads": grads}


def _matrix_text(a: Any) -> str:
    return np.array2string(np.asarray(a), precision=6, suppress_small=False)


def _entry_json(name: str, symbolic: str, how: str, a: Any) -> dict:
    a = np.asarray(a)
    return {
        "name": name,
        "shape": list(a.shape),
        "dims": symbolic,
        "equation": how,
        "value": a.tolist(),
    }


def _print_comparison(comparison: Any, out: Any) -> None:
    print("\ndC/dW[l] and dC/db[l] against jax.grad of the same cost:", file=out)
    print(comparison, file=out)


def _check_layers_memory(args: argparse.Namespace) -> None:
    """Refuses --layers (with --m, where the subcommand has it) too large."""
    what = f"--layers {','.join(map(str, args.layers))}"
    m = getattr(args, "m", 0)
    if m:
        what += f" with --m {m}"
    check_memory(
        args.layers, m, args.dtype, what, advice(args), _fd_entries(args.layers, args)
    )


def _load_problem(args: argparse.Namespace) -> tuple:
    """(params, X, Y) of --params and --data, checked to chain and to fit."""
    params = load_params(args.params, args.dtype)
    X, Y = load_data(args.data, args.dtype)
    try:
        sizes = check_shapes(params, X, Y)  # the widths n[0], ..., n[L]
    except ValueError as err:
        raise InputError(
            "\n".join(
                f"{args.params} with {args.data}: {line}"
                for line in str(err).splitlines()
            )
        ) from None
    m = X.shape[1]
    widths = ",".join(map(str, sizes))
    check_memory(
        sizes,
        m,
        args.dtype,
        f"{args.params} with {args.data} (widths {widths}, m = {m})",
        advice(args),
        _fd_entries(sizes, args),
    )
    return params, X, Y


def _fd_entries(sizes: tuple[int, ...], args: argparse.Namespace) -> int:
    """How many entries of the W[l] and b[l] `check`'s --fd perturbs; 0 without."""
    fd = getattr(args, "fd", "none")
    if fd == "none":
        return 0
    sizes_of_arrays = [
        size for n_prev, n in itertools.pairwise(sizes) for size in (n * n_prev, n)
    ]
    if fd == "all":
        return sum(sizes_of_arrays)
    return sum(min(size, args.fd_samples) for size in sizes_of_arrays)


def run_example(args: argparse.Namespace) -> int:
    _check_layers_memory(args)
    sizes, m = args.layers, args.m
    params, X, Y = example_problem(args.seed, sizes, m, np.dtype(args.dtype))
    result = walkthrough(params, X, Y, args.activation, args.form, args.cost)
    comparison = compare(
        params, X, Y, args.activation, args.form, args.cost, grads=result["grads"]
    )
    if args.format != "text":
        if args.json:
            raise InputError("--json and --format markdown|latex exclude each other")
        render = render_markdown if args.format == "markdown" else render_latex
        settings = RenderSettings(
            args.activation, args.form, args.cost, args.dtype, args.seed, result["cost"]
        )
        try:
            print(render(result["entries"], settings), end="")
        except ValueError as err:  # a network too large to print legibly
            raise InputError(str(err)) from None
        return 0 if comparison.ok else 1
    if args.json:
        print(
            json.dumps(
                {
                    "sizes": list(sizes),
                    "m": m,
                    "seed": args.seed,
                    "activation": args.activation,
                    "form": args.form,
                    "cost": args.cost,
                    "dtype": args.dtype,
                    "matrices": [_entry_json(*e) for e in result["entries"]],
                    "C": result["cost"],
                    "comparison": comparison.to_dict(),
                },
                indent=1,
            )
        )
        return 0 if comparison.ok else 1
    n = ", ".join(f"n[{l}] = {s}" for l, s in enumerate(sizes))
    print(f"Back propagation example: {n}, m = {m}, seed {args.seed}")
    print(
        f"hidden activation {args.activation}, sigmoid output, {args.cost} "
        f"cost, {args.form} form, {args.dtype}"
    )
    for name, symbolic, how, a in result["entries"]:
        if name in ("A[0]", "W[1]", "Z[1]", f"dA[{len(sizes) - 1}]"):
            section = {
                "A[0]": "Input data set",
                "W[1]": "Initial parameters",
                "Z[1]": "Feed forward",
            }.get(name, "Back propagation")
            if section == "Back propagation":
                print(f"\nC = {result['cost']:.10g}  ({args.cost} cost over m)")
            print(f"\n## {section}")
        shape = tuple(np.shape(a))
        print(f"\n{name} = {how}    {symbolic} = {shape}")
        print(_matrix_text(a))
    _print_comparison(comparison, sys.stdout)
    return 0 if comparison.ok else 1


def run_draw(args: argparse.Namespace) -> int:
    check_output_paths({"--out": args.out}, {})
    check_suffix("--out", args.out, ".png", "draw writes a PNG")
    try:
        import matplotlib  # noqa: F401  (drawing imports it; say how to install)
    except ImportError:
        raise InputError(
            f"draw needs matplotlib, which is not installed: {PLOT_EXTRA}"
        ) from None
    try:
        # A symbolic link is written through: the link stays, its target
        # gets the picture.
        draw_network(args.layers, os.path.realpath(args.out))
    except (ImportError, ValueError) as err:  # no matplotlib, or too deep
        raise InputError(str(err)) from None
    print(f"wrote {args.out}: the {'-'.join(map(str, args.layers))} network")
    return 0


def _grad_keys(L: int) -> str:
    """The archive's keys: "dW1, db1, dW2, db2", or "dW1, db1, ..., dW5, db5"."""
    if L <= 3:
        return ", ".join(f"dW{l}, db{l}" for l in range(1, L + 1))
    return f"dW1, db1, ..., dW{L}, db{L}"


def run_init(args: argparse.Namespace) -> int:
    check_output_paths({"--out": args.out}, {})
    check_suffix("--out", args.out, ".npz", "init writes an .npz archive")
    if args.scale is not None and args.scheme != "normal":
        raise InputError(
            f"--scale sets the normal scheme's standard deviation; the "
            f"{args.scheme} scheme takes it from the widths"
        )
    _check_layers_memory(args)
    try:
        params = init(
            args.layers,
            jax.random.key(args.seed),
            args.scheme,
            args.scale,
            args.dtype,
        )
    except ValueError as err:  # a --scale that over- or underflows the dtype
        raise InputError(str(err)) from None
    save_params(args.out, params)
    widths = ",".join(map(str, args.layers))
    print(f"wrote {args.out}: widths {widths}, {args.scheme} initialisation")
    return 0


def run_grad(args: argparse.Namespace) -> int:
    check_output_paths(
        {"--out": args.out}, {"--params": args.params, "--data": args.data}
    )
    check_suffix("--out", args.out, ".npz", "grad writes an .npz archive")
    params, X, Y = _load_problem(args)
    C, grads = value_and_grad(params, X, Y, args.activation, args.form, args.cost)
    comparison = compare(
        params, X, Y, args.activation, args.form, args.cost, grads=grads
    )
    if args.out is not None and comparison.ok:
        save_grads(args.out, grads)
    if args.json:
        print(
            json.dumps(
                {
                    "cost": args.cost,
                    "C": float(C),
                    "m": int(X.shape[1]),
                    "sizes": [int(X.shape[0]), *(int(W.shape[0]) for W, _ in params)],
                    "out": args.out if comparison.ok else None,
                    "comparison": comparison.to_dict(),
                },
                indent=1,
            )
        )
    else:
        print(f"C = {float(C):.10g}  ({args.cost} cost over m = {X.shape[1]})")
        _print_comparison(comparison, sys.stdout)
        if args.out is not None and comparison.ok:
            print(f"wrote {args.out}: {_grad_keys(len(params))}")
        elif args.out is not None:
            print(f"{args.out} not written: the gradients do not match jax.grad")
    return 0 if comparison.ok else 1


def _refuse_random_network_options(args: argparse.Namespace) -> None:
    """Refuses the options of check's random network given with files.

    --seed also picks the entries of --fd sample, so it is refused only
    with --fd all or none, where it would change nothing.
    """
    given = [
        flag for flag in ("--layers", "--m") if getattr(args, flag[2:]) is not None
    ]
    if args.seed is not None and args.fd != "sample":
        given.append("--seed")
    elif args.seed is None:
        args.seed = 0
    if given:
        names = " and ".join([", ".join(given[:-1]), given[-1]] if given[1:] else given)
        verb = "applies" if len(given) == 1 else "apply"
        seed_too = " (--seed also picks the entries of --fd sample)"
        raise InputError(
            f"{names} {verb} only without --params and --data, which give the "
            f"network and the data{seed_too if '--seed' in given else ''}; leave "
            f"{'it' if len(given) == 1 else 'them'} out"
        )


def run_check(args: argparse.Namespace) -> int:
    if (args.params is None) != (args.data is None):
        raise InputError("--params and --data go together: give both or neither")
    if args.params is not None:
        _refuse_random_network_options(args)
        params, X, Y = _load_problem(args)
    else:
        # None: not given on the command line (see the parser).
        args.layers = DOCUMENT_SIZES if args.layers is None else args.layers
        args.m = CHECK_M if args.m is None else args.m
        args.seed = 0 if args.seed is None else args.seed
        _check_layers_memory(args)
        params, X, Y = example_problem(
            args.seed, args.layers, args.m, np.dtype(args.dtype)
        )
    hand_written, note = None, None
    if args.mistake is not None:
        try:
            hand_written = mistaken_derivation(
                params, X, Y, args.mistake, args.activation, args.cost, args.form
            )
        except ValueError as err:
            raise InputError(str(err)) from None
        clean = derivation(params, X, Y, args.activation, args.form, args.cost)
        rtol, atol = tolerance(np.dtype(args.dtype))
        if all(
            np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
            for a, b in zip(
                jax.tree.leaves(hand_written), jax.tree.leaves(clean), strict=True
            )
        ):
            note = (
                f"note: {args.mistake} changes nothing on this network (its "
                "shapes, activation or form hide it), so there is nothing to "
                "find; see its description above"
            )
    report = check(
        params,
        X,
        Y,
        args.activation,
        args.cost,
        args.form,
        hand_written=hand_written,
        fd=args.fd,
        fd_samples=args.fd_samples,
        seed=args.seed,
    )
    if args.json:
        print(
            json.dumps(
                {**report.to_dict(), "mistake": args.mistake, "note": note}, indent=1
            )
        )
    else:
        if args.mistake is not None:
            print(f"with the mistake {args.mistake}: {MISTAKES[args.mistake]}")
        if note is not None:
            print(note)
        print(report)
    return 0 if report.ok else 1


def _common(p: argparse.ArgumentParser, dtype_default: str) -> None:
    p.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default="sigmoid",
        help="g of the hidden layers; the output layer is a sigmoid "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--form",
        choices=FORMS,
        default="fused",
        help="fused: delta[L] = A[L] - Y; document: dA[L] * sigmoid'(Z[L]) "
        "as written (default: %(default)s)",
    )
    p.add_argument(
        "--cost",
        choices=COSTS,
        default="cross_entropy",
        help="the cost averaged over m (default: %(default)s)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default=dtype_default,
        help="dtype of the parameters and data (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="manual-bp",
        description="Backpropagation by hand, as the worked example derives "
        "it, checked against jax.grad.",
    )
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "example",
        help="run the document's worked example, every matrix shown",
        description="Runs one forward and backward cycle of the document's "
        "example with seeded numbers and checks it against jax.grad.",
    )
    p.add_argument(
        "--seed", type=seed, default=0, help="seed of the numbers (default: 0)"
    )
    p.add_argument(
        "--layers",
        type=layer_sizes,
        default=DOCUMENT_SIZES,
        help="widths n[0],...,n[L] (default: 5,4,3,1)",
    )
    p.add_argument(
        "--m", type=positive_int, default=DOCUMENT_M, help="examples (default: 2)"
    )
    _common(p, "float64")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: the plain printout; markdown or latex: the derivation laid "
        "out as the document, each equation with its numbers and dimensions, "
        "for widths and m up to 12 (default: %(default)s)",
    )
    p.set_defaults(run=run_example)

    p = sub.add_parser(
        "draw",
        help="draw the network as a PNG (needs matplotlib)",
        description="Draws the network as the document's Figure 1: a column "
        "of nodes per layer, labelled with n[l] and the shapes of W[l] and "
        f"b[l]. Needs matplotlib: {PLOT_EXTRA}.",
    )
    p.add_argument(
        "--layers",
        type=layer_sizes,
        default=DOCUMENT_SIZES,
        help="widths n[0],...,n[L] (default: 5,4,3,1)",
    )
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(run=run_draw)

    p = sub.add_parser(
        "init",
        help="write seeded parameters to an .npz",
        description="Writes W1, b1, ..., WL, bL for the given widths.",
    )
    p.add_argument("--layers", type=layer_sizes, required=True, help="e.g. 5,4,3,1")
    p.add_argument("--out", required=True, help="parameters .npz to write")
    p.add_argument("--seed", type=seed, default=0, help="seed of the draw (default: 0)")
    p.add_argument(
        "--scheme",
        choices=SCHEMES,
        default="xavier",
        help="initialisation of the W[l]; every b[l] starts at 0 "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--scale",
        type=positive_float,
        help=f"standard deviation of the normal scheme (default: {DEFAULT_SCALE})",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="dtype of the parameters (default: %(default)s)",
    )
    p.set_defaults(run=run_init)

    p = sub.add_parser(
        "grad",
        help="gradients of your network on your data",
        description="Computes dC/dW[l] and dC/db[l] by the hand-written "
        "backward pass, checks them against jax.grad and writes them.",
    )
    p.add_argument("--params", required=True, help=".npz with W1, b1, ..., WL, bL")
    p.add_argument(
        "--data",
        required=True,
        help=".npz with X (n[0], m) and Y (n[L], m), or .csv with one "
        "example per row, label last",
    )
    p.add_argument("--out", help=".npz to write dW1, db1, ... to")
    _common(p, "float32")
    p.set_defaults(run=run_grad)

    p = sub.add_parser(
        "check",
        help="check every quantity of the derivation against autodiff",
        description="Checks Z[l], A[l], dA[l], delta[l], dW[l] and db[l] of "
        "every layer against autodiff, names the first that differs, and "
        "checks the gradients against finite differences. Runs on a seeded "
        "random network, or on --params and --data files.",
    )
    # None marks an option not given, which --params and --data refuse.
    p.add_argument(
        "--layers",
        type=layer_sizes,
        help="widths n[0],...,n[L] of the random network, without --params "
        "and --data (default: 5,4,3,1)",
    )
    p.add_argument(
        "--m",
        type=positive_int,
        help=f"examples of the random network (default: {CHECK_M})",
    )
    p.add_argument(
        "--seed",
        type=seed,
        help="seed of the random network and of the entries --fd sample picks "
        "(default: 0)",
    )
    p.add_argument("--params", help=".npz with W1, b1, ..., WL, bL")
    p.add_argument("--data", help=".npz or .csv, as for grad")
    p.add_argument(
        "--fd",
        choices=FD_CHOICES,
        default="sample",
        help="finite differences of the parameters: sample entries of each "
        "W[l] and b[l], all of them, or none. all runs 2 P forward passes for "
        "the P parameters, so it is slow for large networks (about 10 s for "
        "--layers 200,200,1, 2 minutes for 400,400,1) (default: %(default)s)",
    )
    p.add_argument(
        "--fd-samples",
        type=positive_int,
        default=8,
        help="entries of each array with --fd sample (default: 8)",
    )
    p.add_argument(
        "--mistake",
        choices=tuple(MISTAKES),
        help="inject one classic derivation mistake, to see the checker find it",
    )
    _common(p, "float64")
    p.set_defaults(run=run_check)

    add_train_parser(sub)
    return top


def _out_of_memory(err: Exception) -> str | None:
    """The first line of an out-of-memory error, or None for another error.

    XLA raises every runtime error as a JaxRuntimeError; running out of
    memory is told apart by its text. numpy raises a MemoryError.
    """
    text = str(err).strip()
    line = text.splitlines()[0].rstrip(".") if text else type(err).__name__
    if isinstance(err, MemoryError):
        return line
    if "Out of memory" in text or "RESOURCE_EXHAUSTED" in text:
        return f"XLA: {line}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    try:
        return args.run(args)
    except InputError as err:
        print(f"manual-bp {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (jax.errors.JaxRuntimeError, MemoryError) as err:
        detail = _out_of_memory(err)
        if detail is None:  # another XLA error: a bug to see in full
            raise
        print(
            f"manual-bp {args.command}: error: out of memory ({detail}); "
            f"{advice(args)}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"manual-bp {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (| head): stop quietly, as a
        # filter should, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
