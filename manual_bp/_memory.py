"""Whether a network fits in memory, checked before the command line builds it.

Before a subcommand makes any array of its network it estimates the bytes
the run holds at once and refuses, with an `InputError` (exit status 2,
nothing written), a network that needs more than the machine has
available. The estimate counts the arrays of the derivation, not XLA's
temporaries and copies, so a network that passes may still run out;
`manual-bp` then reports XLA's out-of-memory error in one line.
"""

import argparse
import itertools
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from manual_bp._checker import FD_BATCH
from manual_bp._flat import flat_size
from manual_bp._io import InputError

# Z[l], A[l], dA[l] and delta[l], each (n[l], m): the derivation holds all
# four for every layer at once (A[0] = X counts once for layer 0).
ACTIVATION_COPIES = 4
# `check`'s finite differences perturb FD_BATCH parameter entries at once,
# each with two forward passes of its own, C(p + h e) and C(p - h e), in
# float64 whatever the network's dtype.
FD_PASSES = 2
FD_ITEMSIZE = np.dtype(np.float64).itemsize
# Each perturbed entry also holds copies of all P parameters in float64:
# the two perturbed vectors p + h e and p - h e (`flat.at[position].add`),
# and, batched FD_BATCH at a time, the W[l] and b[l] sliced out of each.
# XLA's compiled memory analysis of the finite differences measured 5.3
# copies per entry for widths 300,300,1 and 5.6 for 600,600,1 (m = 1);
# 6 rounds that up.
FD_PARAM_COPIES = 6

MEMINFO = "/proc/meminfo"


class Need(NamedTuple):
    """The bytes a run needs, and its largest array in the document's notation."""

    total: int
    largest: str  # "W[2]", or "A[l]" for an (n[l], m) activation
    shape: tuple[int, int]
    largest_bytes: int
    fd_bytes: int  # the finite differences' share of total


def memory_needed(
    sizes: Sequence[int], m: int, dtype: Any, fd_entries: int = 0
) -> Need:
    """Estimates the bytes a network of widths `sizes` holds on m examples.

    total = (2 P + ACTIVATION_COPIES * sum over l = 0..L of n[l] m) * itemsize
            + k * (FD_PASSES * sum over l = 1..L of n[l] m + FD_PARAM_COPIES * P) * 8

    P = sum over l of n[l] (n[l-1] + 1) counts the parameters; the second P
    their gradients (for `init`, the random draw before it is scaled). The
    last term is `check`'s finite differences, 0 without them: each of the
    k = min(FD_BATCH, fd_entries) entries perturbed at once makes two
    float64 forward passes, and holds FD_PARAM_COPIES float64 copies of the
    P parameters (the perturbed p + h e and p - h e and their W[l], b[l]).
    For widths 3000,3000,1, m = 1 and --fd all: P = 3000 * 3001 + 3001 =
    9006001, k = 64, and the copies alone are 64 * 6 * 9006001 * 8 bytes =
    27.7 GB.

    Args:
      sizes: the widths n[0], ..., n[L].
      m: the examples; 0 when the run makes no activations (`init`).
      dtype: the dtype of the parameters and activations.
      fd_entries: the parameter entries the finite differences perturb.
    """
    itemsize = np.dtype(dtype).itemsize
    activations = sum(n * m for n in sizes)
    P = flat_size(sizes)
    at_once = min(FD_BATCH, fd_entries)
    fd_entries_held = FD_PASSES * sum(n * m for n in sizes[1:]) + FD_PARAM_COPIES * P
    fd = at_once * fd_entries_held * FD_ITEMSIZE
    total = (2 * P + ACTIVATION_COPIES * activations) * itemsize + fd
    arrays = [
        (f"W[{l}]", (n, n_prev))
        for l, (n_prev, n) in enumerate(itertools.pairwise(sizes), start=1)
    ]
    arrays += [(f"A[{l}]", (n, m)) for l, n in enumerate(sizes)]
    name, shape = max(arrays, key=lambda array: array[1][0] * array[1][1])
    return Need(total, name, shape, shape[0] * shape[1] * itemsize, fd)


def check_memory(
    sizes: Sequence[int],
    m: int,
    dtype: Any,
    what: str,
    advice: str,
    fd_entries: int = 0,
    available: int | None = None,
) -> None:
    """Refuses a network that needs more memory than is available.

    Args:
      sizes, m, dtype, fd_entries: as for `memory_needed`.
      what: the message's start, naming the network as the user gave it,
        e.g. "--layers 5,100000,100000,1".
      advice: the message's end, e.g. "use smaller widths".
      available: the bytes available; None reads `available_memory()`.
        When that is unknown too, nothing is checked.

    Raises:
      InputError: e.g. "--layers 5,100000,100000,1 needs about 80.0 GB
        (W[2] alone is (100000, 100000) = 40.0 GB in float32); this machine
        has 21.3 GB available; use smaller widths (--layers)".
    """
    if available is None:
        available = available_memory()
    if available is None:
        return
    need = memory_needed(sizes, m, dtype, fd_entries)
    if need.total <= available:
        return
    fd = f", the finite differences {format_bytes(need.fd_bytes)}" if fd_entries else ""
    raise InputError(
        f"{what} needs about {format_bytes(need.total)} ({need.largest} alone "
        f"is {need.shape} = {format_bytes(need.largest_bytes)} in "
        f"{np.dtype(dtype)}{fd}); this machine has {format_bytes(available)} "
        f"available; {advice}"
    )


def available_memory() -> int | None:
    """The bytes of memory available to a new run, or None when unknown.

    Linux's MemAvailable in /proc/meminfo (free memory plus what the kernel
    can reclaim); elsewhere the free physical pages times the page size.
    """
    try:
        with open(MEMINFO, encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return pages * page_size if pages >= 0 and page_size > 0 else None


def advice(args: argparse.Namespace) -> str:
    """What to make smaller, in the terms of the subcommand's arguments."""
    if args.command == "train":
        smaller = "smaller hidden widths (--layers) or fewer examples"
    elif getattr(args, "params", None) is not None:
        smaller = "smaller widths or fewer examples"
    elif getattr(args, "m", None) is not None:
        smaller = "smaller widths (--layers) or a smaller --m"
    else:
        smaller = "smaller widths (--layers)"
    fd = ", or --fd none" if getattr(args, "fd", "none") != "none" else ""
    return f"use {smaller}{fd}"


def format_bytes(count: int) -> str:
    """count in decimal units: 40000000000 -> "40.0 GB", 512 -> "512 bytes".

    Beyond the largest unit (999.9 YB), a power of ten: "6.4e+27 bytes".
    """
    if count < 1000:
        return f"{count} bytes"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"):
        value /= 1000
        if round(value, 1) < 1000:  # 999.96 would print as 1000.0: go on
            return f"{value:.1f} {unit}"
    return f"{float(count):.1e} bytes"
