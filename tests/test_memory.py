"""Tests of the memory estimate the command line checks before building a network.

Every estimate is worked out by hand next to the expected number; the
available memory is always passed in or faked, so nothing large is made.
"""

import os
import re

import numpy as np
import pytest

from manual_bp import _memory
from manual_bp._io import InputError
from manual_bp._memory import (
    Need,
    available_memory,
    check_memory,
    format_bytes,
    memory_needed,
)


def test_memory_needed_of_the_document_network():
    # P = 4 (5 + 1) + 3 (4 + 1) + 1 (3 + 1) = 24 + 15 + 4 = 43;
    # activations: (5 + 4 + 3 + 1) * m = 13 * 2 = 26 entries, 4 copies each;
    # (2 * 43 + 4 * 26) * 8 bytes = 190 * 8 = 1520.
    # Largest: W[1] (4, 5) = 20 entries against A[0] (5, 2) = 10.
    assert memory_needed((5, 4, 3, 1), 2, np.float64) == Need(
        1520, "W[1]", (4, 5), 160, 0
    )


def test_memory_needed_counts_passes_and_parameter_copies_per_finite_difference():
    # 27 entries (W[1] 8, b[1] 4, W[2] 8, b[2] 3, W[3] 3, b[3] 1), each two
    # float64 forward passes of (4 + 3 + 1) * 2 = 16 entries and 6 float64
    # copies of the P = 43 parameters: 27 * (2 * 16 + 6 * 43) * 8 = 27 * 290
    # * 8 = 62640 bytes on top of the 1520 above, whatever the network's dtype.
    need = memory_needed((5, 4, 3, 1), 2, np.float64, fd_entries=27)
    assert (need.total, need.fd_bytes) == (1520 + 62640, 62640)
    # At most 64 entries at once: 64 * 290 * 8 = 148480.
    need = memory_needed((5, 4, 3, 1), 2, np.float64, fd_entries=1000)
    assert (need.total, need.fd_bytes) == (1520 + 148480, 148480)


def test_memory_needed_of_all_finite_differences_of_a_wide_layer():
    # Widths 3000,3000,1, m = 1, --fd all: P = 3000 * 3001 + 1 * 3001 =
    # 9006001. Without finite differences (2P + 4 * 6001 * 1) * 8 =
    # 144288048 bytes; with them 64 entries at once, each 2 * 3001 * 1
    # activation entries and 6 P parameter copies: 64 * (6002 + 54036006)
    # * 8 = 27669508096 bytes (27.7 GB), more than XLA's 25.7 GB measured
    # for this run, so a machine without it is refused before XLA runs out.
    need = memory_needed((3000, 3000, 1), 1, np.float64, fd_entries=9006001)
    assert need.fd_bytes == 27669508096
    assert need.total == 144288048 + 27669508096


def test_memory_needed_of_wide_layers_names_the_largest_weight():
    # P = 100000 * 6 + 100000 * 100001 + 1 * 100001 = 10000800001, m = 0
    # (init makes no activations); 2P * 4 bytes = 80006400008.
    assert memory_needed((5, 100000, 100000, 1), 0, np.float32) == Need(
        80006400008, "W[2]", (100000, 100000), 40_000_000_000, 0
    )


def test_memory_needed_of_many_examples_names_the_input():
    # P = 43; 13 * 10^9 activation entries, 4 copies: (86 + 52 * 10^9) * 8.
    # Largest: A[0] (5, 10^9), 4 * 10^10 bytes in float64.
    assert memory_needed((5, 4, 3, 1), 10**9, np.float64) == Need(
        (86 + 52 * 10**9) * 8, "A[0]", (5, 10**9), 40_000_000_000, 0
    )


def test_check_memory_refuses_naming_the_largest_array_and_the_sizes():
    with pytest.raises(InputError) as error:
        check_memory(
            (5, 100000, 100000, 1),
            0,
            "float32",
            "--layers 5,100000,100000,1",
            "use smaller widths (--layers)",
            available=21_300_000_000,
        )
    assert str(error.value) == (
        "--layers 5,100000,100000,1 needs about 80.0 GB (W[2] alone is "
        "(100000, 100000) = 40.0 GB in float32); this machine has 21.3 GB "
        "available; use smaller widths (--layers)"
    )


def test_check_memory_names_the_finite_differences_share():
    # 1520 + 62640 = 64160 bytes, as above.
    with pytest.raises(
        InputError,
        match=re.escape(
            "needs about 64.2 kB (W[1] alone is (4, 5) = 160 bytes in float64, the "
            "finite differences 62.6 kB); this machine has 1.0 kB available"
        ),
    ):
        check_memory((5, 4, 3, 1), 2, "float64", "it", "advice", 27, 1000)


def test_check_memory_allows_exactly_what_is_available():
    check_memory((5, 4, 3, 1), 2, "float64", "it", "advice", available=1520)
    with pytest.raises(InputError, match=r"needs about 1\.5 kB"):
        check_memory((5, 4, 3, 1), 2, "float64", "it", "advice", available=1519)


def test_check_memory_is_skipped_when_memory_cannot_be_read(monkeypatch):
    monkeypatch.setattr(_memory, "available_memory", lambda: None)
    # 80 GB on a machine whose memory is unknown: not refused.
    assert check_memory((5, 100000, 100000, 1), 0, "float32", "it", "advice") is None


def test_check_memory_reads_the_machine_when_not_told(monkeypatch):
    monkeypatch.setattr(_memory, "available_memory", lambda: 1519)
    with pytest.raises(InputError, match=r"this machine has 1\.5 kB available"):
        check_memory((5, 4, 3, 1), 2, "float64", "it", "advice")


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1000, "1.0 kB"),
        (21_300_000_000, "21.3 GB"),
        (2_100_000_000_000, "2.1 TB"),
        (999_960, "1.0 MB"),  # 999.96 kB rounds to 1000.0: the next unit
        (5 * 10**18, "5.0 EB"),
        (64 * 10**23, "6.4 YB"),  # was "6400000000.0 PB"
        (999_949 * 10**21, "999.9 YB"),
        (64 * 10**26, "6.4e+27 bytes"),  # beyond 999.9 YB: a power of ten
    ],
)
def test_format_bytes_in_decimal_units(count, text):
    assert format_bytes(count) == text


MEMINFO = """\
MemTotal:       25165824 kB
MemFree:         1000000 kB
MemAvailable:   20800000 kB
Buffers:          100000 kB
"""


def test_available_memory_reads_memavailable(tmp_path, monkeypatch):
    path = tmp_path / "meminfo"
    path.write_text(MEMINFO)
    monkeypatch.setattr(_memory, "MEMINFO", str(path))
    monkeypatch.setattr(os, "sysconf", _no_sysconf)
    assert available_memory() == 20800000 * 1024


def _sysconf(name):
    return {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}[name]


def _no_sysconf(name):
    raise ValueError(f"unrecognized configuration name {name!r}")


@pytest.mark.parametrize(
    "meminfo",
    [None, "MemTotal: 25165824 kB\nMemFree: 1000000 kB\n", "MemAvailable: lots\n"],
    ids=["no-proc", "old-kernel", "garbled"],
)
def test_available_memory_falls_back_on_free_pages(tmp_path, monkeypatch, meminfo):
    path = tmp_path / "meminfo"
    if meminfo is not None:
        path.write_text(meminfo)
    monkeypatch.setattr(_memory, "MEMINFO", str(path))
    monkeypatch.setattr(os, "sysconf", _sysconf)
    assert available_memory() == 1000 * 4096


@pytest.mark.parametrize("sysconf", [_no_sysconf, lambda name: -1])
def test_available_memory_unknown_is_none(tmp_path, monkeypatch, sysconf):
    monkeypatch.setattr(_memory, "MEMINFO", str(tmp_path / "missing"))
    monkeypatch.setattr(os, "sysconf", sysconf)
    assert available_memory() is None
