"""`manual-bp train`: gradient descent with the hand-written gradients.

    manual-bp train                          # built-in breast cancer data
    manual-bp train --data data.csv --layers 8,4 --epochs 200 --out p.npz
    manual-bp train --layers '' --history h.csv --plot h.png  # L = 1

The built-in data set is standardised by default (statistics of the
training split); files are used as given unless --standardize. Parameters
are saved for the raw features: the standardisation is folded into W[1]
and b[1], so `manual-bp grad` and `--init` take them with the raw data.

Exit status: 0 after training, 1 when the cost or the parameters stop
being finite (the run stops there), 2 for bad input. In both failure cases
nothing is written: outputs are written at the end, each atomically.
"""

import argparse
import contextlib
import io
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from manual_bp._activations import ACTIVATIONS
from manual_bp._arguments import positive_float, positive_int, seed
from manual_bp._costs import COSTS
from manual_bp._datasets import DATASETS, load_dataset
from manual_bp._draw import PLOT_EXTRA
from manual_bp._io import (
    InputError,
    check_output_paths,
    check_suffix,
    load_data,
    load_params,
    save_params,
    write_atomically,
)
from manual_bp._memory import advice, check_memory
from manual_bp._params import init, layers
from manual_bp._train import (
    DivergenceError,
    EpochStats,
    check_labels,
    fold,
    split,
    standardization,
    standardize,
    train,
    unfold,
)

DTYPES = ("float32", "float64")
HISTORY_COLUMNS = ("epoch", "train_cost", "train_accuracy", "val_cost", "val_accuracy")

# Defaults for the built-in data: about 97% validation accuracy in well
# under a second of training (12 seeds: 95.6% to 99.1%).
DEFAULT_HIDDEN = (16,)


# Argument types: each message says what is expected and what was given.


def hidden_widths(text: str) -> tuple[int, ...]:
    """Parses "16,8" into (16, 8), and "" into () (no hidden layer, L = 1)."""
    if not text.strip():
        return ()
    try:
        widths = tuple(int(s) for s in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"expected the hidden widths n[1],...,n[L-1] as positive integers, "
            f"e.g. 16,8, or '' for none; got {text!r}"
        )
    return widths


def batch_size(text: str) -> int | None:
    """An integer >= 1, or "full" (None): all training columns in one step."""
    if text == "full":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 1 or 'full', got {text!r}"
        ) from None


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number from 0 up to (not including) 1, got {text!r}"
        )
    return value


# The command.


def add_train_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds the `train` subcommand to the subparsers `sub` of `manual-bp`."""
    p = sub.add_parser(
        "train",
        help="train a network by gradient descent on the hand-written gradients",
        description="Trains by gradient descent, W[l] -= lr dW[l], b[l] -= "
        "lr db[l], with dW[l], db[l] from the hand-written backward pass, "
        "and reports the cost and accuracy of a training and a validation "
        "split. Outputs are written at the end, atomically.",
    )
    p.add_argument(
        "--data",
        default="breast-cancer",
        help="'breast-cancer' (built in: 569 examples, 30 features, 1 = "
        "malignant), or a .csv/.npz as `manual-bp grad` reads "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--layers",
        type=hidden_widths,
        help="hidden widths n[1],...,n[L-1], e.g. 16,8, or '' for none "
        "(logistic regression); n[0] and n[L] come from the data (default: "
        "16, or the widths of --init)",
    )
    p.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default="tanh",
        help="g of the hidden layers; the output is a sigmoid (default: %(default)s)",
    )
    p.add_argument(
        "--cost",
        choices=COSTS,
        default="cross_entropy",
        help="the cost averaged over m (default: %(default)s)",
    )
    p.add_argument("--epochs", type=positive_int, default=30, help="(default: 30)")
    p.add_argument(
        "--lr", type=positive_float, default=0.1, help="learning rate (default: 0.1)"
    )
    p.add_argument(
        "--batch-size",
        type=batch_size,
        default=32,
        help="columns per step, shuffled each epoch, or 'full' for one "
        "unshuffled step per epoch (default: 32)",
    )
    p.add_argument("--seed", type=seed, default=0, help="(default: 0)")
    p.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.2,
        help="share of the examples held out for validation, picked by a "
        "seeded shuffle; 0 trains on all (default: 0.2)",
    )
    p.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        help="standardise the features with the training split's mean and "
        "standard deviation (default: on for the built-in data, off for files)",
    )
    p.add_argument("--init", metavar="PARAMS.npz", help="start from these parameters")
    p.add_argument("--out", metavar="PARAMS.npz", help="write the trained parameters")
    p.add_argument(
        "--history",
        metavar="FILE.csv",
        help="write epoch, train and validation cost and accuracy per epoch",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help=f"plot the cost and accuracy curves (needs matplotlib: {PLOT_EXTRA})",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="dtype of the parameters and data (default: %(default)s)",
    )
    p.set_defaults(run=run_train)
    return p


def run_train(args: argparse.Namespace) -> int:
    """Runs `manual-bp train`; returns the exit status (see the module doc)."""
    plot_format = _check_outputs(args)
    dtype = np.dtype(args.dtype)
    builtin = args.data in DATASETS
    if builtin:
        X, Y = load_dataset(args.data, dtype)
    elif Path(args.data).suffix.lower() in (".csv", ".npz"):
        X, Y = load_data(args.data, dtype)
    else:
        raise InputError(
            f"--data {args.data!r}: expected {' or '.join(DATASETS)}, or a "
            ".csv or .npz file"
        )
    try:
        check_labels(Y, args.data)
    except ValueError as err:
        raise InputError(str(err)) from None

    key_init, key_split, key_shuffle = jax.random.split(jax.random.key(args.seed), 3)
    try:
        X_train, Y_train, X_val, Y_val = split(X, Y, args.val_fraction, key_split)
    except ValueError as err:
        raise InputError(f"--val-fraction {args.val_fraction}: {err}") from None
    s = None
    if args.standardize if args.standardize is not None else builtin:
        s = standardization(X_train)
        X_train, X_val = standardize(X_train, s), standardize(X_val, s)

    params = None
    if args.init is not None:
        params = load_params(args.init, dtype)
        _check_init(args.init, params, X.shape[0], args.layers, Y.shape[0])
        hidden = tuple(W.shape[0] for W, _ in layers(params)[:-1])
    else:
        hidden = DEFAULT_HIDDEN if args.layers is None else args.layers
    sizes = (X.shape[0], *hidden, Y.shape[0])
    check_memory(
        sizes,
        X.shape[1],
        dtype,
        f"widths {','.join(map(str, sizes))} (n[0] and n[{len(hidden) + 1}] from "
        f"{args.data}) on m = {X.shape[1]} examples",
        advice(args),
    )
    if params is None:
        params = init(sizes, key_init, "xavier", dtype=dtype)
    elif s is not None:
        params = unfold(params, s)

    start = time.perf_counter()
    try:
        with _progress(args.epochs) as on_epoch:
            result = train(
                params,
                X_train,
                Y_train,
                epochs=args.epochs,
                learning_rate=args.lr,
                batch_size=args.batch_size,
                activation=args.activation,
                cost=args.cost,
                key=key_shuffle,
                # --val-fraction 0 leaves no validation columns: no set.
                X_val=X_val if X_val.shape[1] else None,
                Y_val=Y_val if X_val.shape[1] else None,
                on_epoch=on_epoch,
            )
    except DivergenceError as err:
        print(f"manual-bp train: {err}; stopped, nothing was written", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start

    params = result.params if s is None else fold(result.params, s)
    last = result.history[-1]
    print(_summary(last, X_train.shape[1], X_val.shape[1], seconds))
    # Every file's contents are made before the first is written, so that a
    # failure drawing the plot leaves no half of the outputs behind.
    history_csv = _history_csv(result.history).encode()
    plot_bytes = None if args.plot is None else _plot(result.history, plot_format)
    written = []
    if args.out is not None:
        save_params(args.out, params)
        written.append(args.out)
    if args.history is not None:
        _write_atomically(args.history, history_csv)
        written.append(args.history)
    if plot_bytes is not None:
        _write_atomically(args.plot, plot_bytes)
        written.append(args.plot)
    if written:
        print(f"wrote {', '.join(written)}")
    return 0


def _check_outputs(args: argparse.Namespace) -> str | None:
    """Checks before training that every output can be written.

    Returns:
      The plot's file format (its suffix, "png" without one), or None.

    Raises:
      InputError: for a missing directory, an --out not named .npz, a
        --history not named .csv, matplotlib missing for --plot, or a plot
        format matplotlib cannot write.
    """
    check_output_paths(
        {f"--{flag}": getattr(args, flag) for flag in ("out", "history", "plot")},
        {"--data": args.data, "--init": args.init},
    )
    check_suffix("--out", args.out, ".npz", "train writes an .npz archive")
    check_suffix("--history", args.history, ".csv", "train writes CSV")
    if args.plot is None:
        return None
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(
            f"--plot needs matplotlib, which is not installed: {PLOT_EXTRA}"
        ) from None
    plot_format = Path(args.plot).suffix.lower().lstrip(".") or "png"
    supported = Figure().canvas.get_supported_filetypes()
    if plot_format not in supported:
        raise InputError(
            f"--plot {args.plot}: matplotlib cannot write .{plot_format}; "
            f"expected one of: {', '.join('.' + s for s in sorted(supported))}"
        )
    # Some formats need more than matplotlib (.pgf runs xelatex to measure
    # text): draw a labelled axis in the format now, not after training.
    probe = Figure(figsize=(1, 1))
    probe.subplots().set_xlabel("epoch")
    try:
        probe.savefig(io.BytesIO(), format=plot_format)
    except Exception as err:  # whatever the backend raises: a missing program
        raise InputError(
            f"--plot {args.plot}: matplotlib cannot write .{plot_format} on "
            f"this machine ({type(err).__name__}: {err}); use .png or .svg"
        ) from None
    return plot_format


def _check_init(
    path: str, params: Any, n_0: int, hidden: tuple[int, ...] | None, n_L: int
) -> None:
    """Checks --init's shapes against the data's widths and --layers.

    Raises:
      InputError: naming every layer, array, expected and actual shape.
    """
    pairs = layers(params)
    source = "--layers"
    if hidden is None:
        hidden = tuple(W.shape[0] for W, _ in pairs[:-1])
        source = "the rows of W[1],...,W[L-1]"
    n = (n_0, *hidden, n_L)
    L = len(n) - 1
    widths = ",".join(map(str, n))
    where = f"n[0] and n[{L}] from the data, the others from {source}"
    if len(pairs) != L:
        raise InputError(
            f"{path}: has L = {len(pairs)} layers, expected L = {L} for the "
            f"widths n[0],...,n[{L}] = {widths} ({where})"
        )
    problems = []
    for l, (W, b) in enumerate(pairs, start=1):
        if W.shape != (n[l], n[l - 1]):
            problems.append(
                f"{path}: layer {l}: W[{l}] has shape {W.shape}, expected "
                f"(n[{l}], n[{l - 1}]) = ({n[l]}, {n[l - 1]})"
            )
        if b.shape != (n[l], 1):
            problems.append(
                f"{path}: layer {l}: b[{l}] has shape {b.shape}, expected "
                f"(n[{l}], 1) = ({n[l]}, 1)"
            )
    if problems:
        problems.append(f"(widths n[0],...,n[{L}] = {widths}: {where})")
        raise InputError("\n".join(problems))


@contextlib.contextmanager
def _progress(epochs: int) -> Iterator[Callable[[EpochStats], None]]:
    """A tqdm bar over the epochs on stderr, shown only on a terminal."""
    from tqdm import tqdm

    bar = tqdm(
        total=epochs,
        desc="train",
        unit="epoch",
        file=sys.stderr,
        disable=None,  # None: off when stderr is not a terminal
        dynamic_ncols=True,
    )

    def on_epoch(row: EpochStats) -> None:
        stats = {"cost": f"{row.train_cost:.4f}", "acc": f"{row.train_accuracy:.3f}"}
        if row.val_cost is not None:
            stats["val_cost"] = f"{row.val_cost:.4f}"
            stats["val_acc"] = f"{row.val_accuracy:.3f}"
        bar.set_postfix(stats, refresh=False)
        bar.update()

    try:
        yield on_epoch
    finally:
        bar.close()


def _summary(last: EpochStats, m_train: int, m_val: int, seconds: float) -> str:
    line = (
        f"epoch {last.epoch}: train cost {last.train_cost:.4f}, accuracy "
        f"{last.train_accuracy:.2%} (m = {m_train})"
    )
    if last.val_cost is not None:
        line += (
            f"; validation cost {last.val_cost:.4f}, accuracy "
            f"{last.val_accuracy:.2%} (m = {m_val})"
        )
    return line + f"; {seconds:.2f} s"


def _history_csv(history: Sequence[EpochStats]) -> str:
    lines = [",".join(HISTORY_COLUMNS)]
    for row in history:
        cells = [str(row.epoch)]
        cells += ["" if v is None else repr(float(v)) for v in row[1:]]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _plot(history: Sequence[EpochStats], plot_format: str) -> bytes:
    """The cost and accuracy curves as an image file's bytes."""
    from matplotlib.figure import Figure

    epoch = [row.epoch for row in history]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    for ax, column, label in zip(
        figure.subplots(1, 2), (1, 2), ("cost C", "accuracy"), strict=True
    ):
        ax.plot(epoch, [row[column] for row in history], label="training")
        if history[0].val_cost is not None:
            ax.plot(epoch, [row[column + 2] for row in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=plot_format)
    return buffer.getvalue()


def _write_atomically(path: str, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it."""
    write_atomically(path, lambda file: file.write(data))
