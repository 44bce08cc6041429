"""Argument types shared by the command line's subcommands.

Each raises argparse.ArgumentTypeError saying what is expected and what was
given; argparse turns that into a usage error with exit status 2.
"""

import argparse
import math


def layer_sizes(text: str) -> tuple[int, ...]:
    """Parses "5,4,3,1" into (5, 4, 3, 1): every width n[0], ..., n[L]."""
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected n[0],n[1],...,n[L]: two or more positive integers, "
            f"e.g. 5,4,3,1; got {text!r}"
        )
    return sizes


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def seed(text: str) -> int:
    """A jax.random seed: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to 2**63 - 1, got {text!r}"
        )
    return value


def check_outputs(
    parser: argparse.ArgumentParser, outputs: dict[str, tuple[str | None, str, str]]
) -> None:
    """A usage error (exit 2) unless every output can be written, checked first.

    For scripts that work for minutes before writing: a path in a missing
    directory, on a directory or named for other content (a --json
    README.md) is refused before the work, not after it.

    Args:
      parser: the script's parser, whose `error` reports the problem.
      outputs: flag -> (path or None, suffix, what is written there), e.g.
        {"--json": (args.json, ".json", "bench.py writes JSON")}.
    """
    from manual_bp._io import InputError, check_output_paths, check_suffix

    try:
        check_output_paths({flag: path for flag, (path, _, _) in outputs.items()}, {})
        for flag, (path, suffix, writes) in outputs.items():
            check_suffix(flag, path, suffix, writes)
    except InputError as err:
        parser.error(str(err))
