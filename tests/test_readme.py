"""The README's example runs as written and prints what the README shows."""

import re
from pathlib import Path

import jax.numpy as jnp
import pytest
from problems import run_python

import manual_bp as mb

README = Path(__file__).parents[1] / "README.md"


def python_examples():
    """Each ```python block that the README follows with "prints" and output."""
    pattern = r"```python\n(.*?)```\s*prints\s*```text\n(.*?)```"
    return re.findall(pattern, README.read_text(), re.S)


def test_readme_has_examples_with_output():
    assert len(python_examples()) >= 2


@pytest.mark.parametrize("index", range(2))
def test_readme_example_prints_what_the_readme_shows(index):
    code, shown = python_examples()[index]
    run = run_python(code, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == shown


def test_readme_shape_messages_are_the_librarys():
    text = README.read_text()
    shown = re.search(r"notation, for example\n\n```text\n(.*?)```", text, re.S)
    params = [
        (jnp.zeros((4, 5)), jnp.zeros((4, 1))),
        (jnp.zeros((3, 5)), jnp.zeros((3, 1))),
        (jnp.zeros((1, 3)), jnp.zeros((1,))),
    ]
    with pytest.raises(ValueError) as err:
        mb.check_shapes(params)
    assert str(err.value) + "\n" == shown.group(1)


def test_readme_quick_start_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "## Quick start" in ci and "README.md" in ci
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", README.read_text(), re.S)
    lines = block.group(1).strip().splitlines()
    assert len(lines) == 2
    assert "manual-bp example" in lines[0] and "pytest" in lines[1]


def test_readme_check_output_is_what_the_command_prints(capsys):
    from manual_bp.cli import main

    text = README.read_text()
    command, shown = re.search(
        r"```bash\n(manual-bp check [^\n]*)\n```\s*ends with\s*```text\n(.*?)```",
        text,
        re.S,
    ).groups()
    assert main(command.split()[1:]) == 1
    printed = capsys.readouterr().out.splitlines()
    for line in shown.splitlines():
        if line != "...":
            assert line in printed, line
