"""The network picture: a PNG of sensible size, written atomically, wide
layers elided, bad sizes refused, and a clear message without matplotlib."""

import importlib.util
import re
import struct
import sys

import pytest

from manual_bp._draw import MAX_LAYERS, MAX_NODES, draw_network
from manual_bp._io import InputError

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed: pip install 'manual_bp[plot]'",
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@needs_matplotlib
def test_draw_network_writes_a_png(tmp_path):
    path = tmp_path / "net.png"
    draw_network((5, 4, 3, 1), path)
    data = path.read_bytes()
    width, height = png_size(data)
    assert 600 <= width <= 3000 and 400 <= height <= 3000
    assert 10_000 < len(data) < 2_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["net.png"]  # no temp file left


@needs_matplotlib
def test_draw_network_replaces_an_existing_file(tmp_path):
    path = tmp_path / "net.png"
    path.write_bytes(b"old")
    draw_network([3, 2, 2], str(path))
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["net.png"]


@needs_matplotlib
def test_draw_network_elides_wide_layers(tmp_path):
    # A layer of 300 nodes is drawn in MAX_NODES slots, as one of MAX_NODES.
    draw_network((MAX_NODES, 1), tmp_path / "narrow.png")
    draw_network((300, 1), tmp_path / "wide.png")
    narrow = png_size((tmp_path / "narrow.png").read_bytes())
    wide = png_size((tmp_path / "wide.png").read_bytes())
    assert wide[1] == narrow[1]


@needs_matplotlib
def test_draw_network_unwritable_path(tmp_path):
    missing = tmp_path / "no such directory" / "net.png"
    with pytest.raises(InputError, match=r"net\.png: cannot write"):
        draw_network((2, 1), missing)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "sizes",
    [(5,), (), (5, 0, 1), (5, -1), (5, 2.5, 1), (True, 1), "5,4", None],
    ids=repr,
)
def test_draw_network_refuses_bad_sizes(tmp_path, sizes):
    with pytest.raises(ValueError, match=r"expected the widths n\[0\], n\[1\]"):
        draw_network(sizes, tmp_path / "net.png")
    assert list(tmp_path.iterdir()) == []


def test_draw_network_refuses_too_many_layers(tmp_path):
    sizes = (2,) * (MAX_LAYERS + 2)
    with pytest.raises(ValueError, match=rf"L = {MAX_LAYERS + 1}, at most"):
        draw_network(sizes, tmp_path / "net.png")


def test_draw_network_without_matplotlib(tmp_path, monkeypatch):
    # None in sys.modules makes every import of that name fail.
    for name in [*sys.modules, "matplotlib", "matplotlib.figure"]:
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=re.escape("pip install 'manual_bp[plot]'")):
        draw_network((5, 4, 3, 1), tmp_path / "net.png")
    assert list(tmp_path.iterdir()) == []
