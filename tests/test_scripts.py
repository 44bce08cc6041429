"""The scripts refuse bad arguments before they start minutes of work.

Each runs in its own interpreter, as a user runs it; a refused argument
must exit 2 with argparse's usage error, print nothing on stdout (no
measurement began) and leave the file system as it was.
"""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_refused(result, message):
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].endswith(f"error: {message}")


@pytest.mark.parametrize("name", ["bench.py", "bench_batches.py", "mutations.py"])
def test_json_named_for_other_content_is_refused_and_left_alone(tmp_path, name):
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n")
    result = run_script(name, "--json", notes)
    assert_refused(result, f"--json {notes}: {name} writes JSON; name it .json")
    assert notes.read_text() == "# my notes\n"
    assert list(tmp_path.iterdir()) == [notes]


@pytest.mark.parametrize("name", ["bench.py", "mutations.py"])
def test_json_in_a_missing_directory_is_refused(tmp_path, name):
    path = tmp_path / "missing" / "out.json"
    result = run_script(name, "--json", path)
    assert_refused(result, f"--json {path}: the directory {path.parent} does not exist")
    assert list(tmp_path.iterdir()) == []


def test_bench_plot_must_be_a_png(tmp_path):
    path = tmp_path / "ratios.jpg"
    result = run_script("bench.py", "--plot", path)
    assert_refused(result, f"--plot {path}: bench.py draws a PNG; name it .png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "flag"), [("bench.py", "--rounds"), ("bench_batches.py", "--repeats")]
)
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_sample_counts_must_be_positive_integers(name, flag, value):
    result = run_script(name, flag, value)
    assert_refused(result, f"argument {flag}: expected an integer >= 1, got '{value}'")


def test_mutations_seed_must_be_a_jax_seed():
    result = run_script("mutations.py", "--seed", "-1")
    assert_refused(
        result, "argument --seed: expected an integer from 0 to 2**63 - 1, got '-1'"
    )


@pytest.mark.parametrize("value", ["0", "-2", "inf", "abc"])
def test_bench_batches_memory_budget_must_be_a_positive_number(value):
    result = run_script("bench_batches.py", "--max-gb", value)
    assert_refused(
        result, f"argument --max-gb: expected a positive number, got '{value}'"
    )
