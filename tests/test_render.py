"""The derivation rendered in Markdown and LaTeX: every quantity, its numbers
and dimensions, balanced markup, the size limit, and a pdflatex compile."""

import functools
import re
import shutil
import subprocess

import numpy as np
import pytest

from manual_bp._example import example_problem
from manual_bp._render import (
    MAX_PRINTED,
    RenderSettings,
    check_printable,
    number,
    render_latex,
    render_markdown,
)
from manual_bp.cli import walkthrough

RENDERERS = {"markdown": render_markdown, "latex": render_latex}

# (sizes, m, activation, form, cost): the document's network and another.
NETWORKS = {
    "5-4-3-1_m2": ((5, 4, 3, 1), 2, "sigmoid", "fused", "cross_entropy"),
    "3-2-2_m3": ((3, 2, 2), 3, "tanh", "document", "cross_entropy"),
}


@functools.cache
def make(sizes, m, activation="sigmoid", form="fused", cost="cross_entropy"):
    """The walkthrough's entries and the settings that describe them."""
    params, X, Y = example_problem(0, sizes, m, np.float64)
    result = walkthrough(params, X, Y, activation, form, cost)
    settings = RenderSettings(activation, form, cost, "float64", 0, result["cost"])
    return result["entries"], settings


@pytest.fixture(scope="module", params=list(NETWORKS), ids=list(NETWORKS))
def network(request):
    sizes, m, *rest = NETWORKS[request.param]
    entries, settings = make(sizes, m, *rest)
    return sizes, m, entries, settings


def displays(text: str, fmt: str) -> list[str]:
    """The bodies of the display equations, in order."""
    if fmt == "markdown":
        found = re.findall(r"^\$\$\n(.*?)\n\$\$$", text, re.DOTALL | re.MULTILINE)
    else:
        found = re.findall(r"\\begin\{fiteq\}\n(.*?)\n\\end\{fiteq\}", text, re.DOTALL)
    return [body.removeprefix("\\begin{aligned}\n") for body in found]


def matrices(body: str) -> list[list[list[str]]]:
    """Every bmatrix of a display, as rows of entries."""
    found = re.findall(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", body)
    return [[row.split("&") for row in m.split(r"\\")] for m in found]


def value(text: str) -> float:
    """The inverse of `number`: "-1.5 \\times 10^{-5}" is -1.5e-05."""
    text = text.strip()
    special = {r"\mathrm{NaN}": np.nan, r"\infty": np.inf, r"-\infty": -np.inf}
    if text in special:
        return special[text]
    found = re.fullmatch(r"(\S+) \\times 10\^\{(-?\d+)\}", text)
    return float(f"{found[1]}e{found[2]}") if found else float(text)


def symbol(name: str) -> str:
    """The LaTeX the rendering must use for the quantity `name`."""
    base, _, rest = name.partition("[")
    if not rest:
        return name
    return (r"\delta" if base == "delta" else base) + "^{[" + rest.rstrip("]") + "]}"


def expected_dims(name: str, sizes: tuple[int, ...], m: int) -> str:
    """\\dim(...) of each quantity, written out from the document's table."""
    L = len(sizes) - 1
    base, _, rest = name.partition("[")
    l = int(rest.rstrip("]")) if rest else L
    if base in ("W", "dW"):
        symbolic = f"n^{{[{l}]}} \\times n^{{[{l - 1}]}}"
        numbers = f"{sizes[l]} \\times {sizes[l - 1]}"
    elif base in ("b", "db"):
        symbolic, numbers = f"n^{{[{l}]}} \\times 1", f"{sizes[l]} \\times 1"
    else:  # A, Z, dA, delta, Y: one column per example
        symbolic, numbers = f"n^{{[{l}]}} \\times m", f"{sizes[l]} \\times {m}"
    return f"\\dim({symbol(name)}) = {symbolic} = {numbers}"


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_every_quantity_with_its_numbers(network, fmt):
    _, _, entries, settings = network
    bodies = displays(RENDERERS[fmt](entries, settings), fmt)
    names = [name for name, *_ in entries]
    assert {"A[0]", "Y", "W[1]", "Z[1]", "delta[1]", "dW[1]", "db[1]"} <= set(names)
    for name, _, _, a in entries:
        a = np.asarray(a)
        mine = [b for b in bodies if re.match(re.escape(symbol(name)) + " ", b)]
        assert len(mine) == 1, f"{name}: {len(mine)} displays"
        result = matrices(mine[0])[-1]  # the result is the last matrix
        assert [len(row) for row in result] == [a.shape[1]] * a.shape[0], name
        printed = np.array([[value(x) for x in row] for row in result])
        np.testing.assert_allclose(printed, a, rtol=5e-4, atol=1e-300, err_msg=name)


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_every_quantity_with_its_dimensions(network, fmt):
    sizes, m, entries, settings = network
    text = RENDERERS[fmt](entries, settings)
    for name, *_ in entries:
        assert f"${expected_dims(name, sizes, m)}$" in text, name


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_document_dimensions_as_written(fmt):
    text = RENDERERS[fmt](*make(*NETWORKS["5-4-3-1_m2"]))
    for line in (
        r"\dim(A^{[0]}) = n^{[0]} \times m = 5 \times 2",
        r"\dim(W^{[2]}) = n^{[2]} \times n^{[1]} = 3 \times 4",
        r"\dim(b^{[3]}) = n^{[3]} \times 1 = 1 \times 1",
        r"\dim(Z^{[1]}) = n^{[1]} \times m = 4 \times 2",
        r"\dim(\delta^{[3]}) = n^{[3]} \times m = 1 \times 2",
        r"\dim(dW^{[1]}) = n^{[1]} \times n^{[0]} = 4 \times 5",
        r"\dim(dA^{[1]}) = n^{[1]} \times m = 4 \times 2",
    ):
        assert line in text


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_operands_shown_when_they_fit(fmt):
    bodies = displays(RENDERERS[fmt](*make(*NETWORKS["5-4-3-1_m2"])), fmt)
    (z1,) = [b for b in bodies if b.startswith("Z^{[1]} ")]
    shapes = [(len(m), len(m[0])) for m in matrices(z1)]
    assert shapes == [(4, 5), (5, 2), (4, 1), (4, 2)]  # W[1] A[0] + b[1] = Z[1]
    (dw1,) = [b for b in bodies if b.startswith("dW^{[1]} ")]
    shapes = [(len(m), len(m[0])) for m in matrices(dw1)]
    assert shapes == [(4, 2), (2, 5), (4, 5)]  # delta[1] A[0]^T = dW[1]


def test_render_operands_left_out_when_too_wide():
    entries, settings = make((12, 12, 1), 12, "relu", "fused", "quadratic")
    bodies = displays(render_markdown(entries, settings), "markdown")
    (dw1,) = [b for b in bodies if b.startswith("dW^{[1]} ")]
    assert [(len(m), len(m[0])) for m in matrices(dw1)] == [(12, 12)]


def test_render_sections_in_the_documents_order(network):
    _, _, entries, settings = network
    text = render_markdown(entries, settings)
    headings = re.findall(r"^#+ (.*)$", text, re.MULTILINE)
    L = len(network[0]) - 1
    major = [h for h in headings if "layer" not in h.lower()]
    assert major == [
        "Back propagation example",
        "Input data set",
        "Initial parameters",
        "Feed forward",
        "Cost",
        "Back propagation",
    ]
    backward = [h for h in headings if h.startswith("Back propagation layer")]
    assert backward == [f"Back propagation layer {l}" for l in range(L, 0, -1)]


def check_balanced(text: str) -> None:
    """\\begin/\\end nest, braces balance, and $ and $$ come in pairs."""
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+\*?)\}", text):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, f"\\end{{{env}}} unmatched"
    assert stack == [], f"unclosed: {stack}"
    depth = 0
    for brace in re.findall(r"(?<!\\)[{}]", text):
        depth += 1 if brace == "{" else -1
        assert depth >= 0, "a } closes nothing"
    assert depth == 0, "a { is never closed"
    assert text.count("$$") % 2 == 0
    assert len(re.findall(r"(?<!\\)\$", text)) % 2 == 0


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_markup_balanced(network, fmt):
    *_, entries, settings = network
    text = RENDERERS[fmt](entries, settings)
    check_balanced(text)
    if fmt == "markdown":
        for body in displays(text, fmt):
            assert "\n\n" not in body  # a blank line ends a $$ block on GitHub
    else:
        assert text.startswith(r"\documentclass")
        assert r"\usepackage{amsmath}" in text
        assert text.endswith("\\end{document}\n")


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_markup_balanced_quadratic_cost(fmt):
    check_balanced(
        RENDERERS[fmt](*make((3, 2, 2), 3, "leaky_relu", "fused", "quadratic"))
    )


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.123456, "0.1235"),
        (-2.0, "-2"),
        (-0.0, "0"),
        (1.5e-5, r"1.5 \times 10^{-5}"),
        (123456.0, r"1.235 \times 10^{5}"),
        (float("nan"), r"\mathrm{NaN}"),
        (float("-inf"), r"-\infty"),
    ],
)
def test_number_four_significant_digits(x, text):
    assert number(x) == text


@pytest.mark.parametrize(
    ("sizes", "m", "named"),
    [
        ((13, 2, 1), 2, r"n\[0\] = 13"),
        ((3, 2, 40), 2, r"n\[2\] = 40"),
        ((3, 2, 1), 13, r"m = 13"),
    ],
)
def test_check_printable_refuses_large_networks(sizes, m, named):
    with pytest.raises(ValueError, match=named + f".*at most {MAX_PRINTED}"):
        check_printable(sizes, m)


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_render_refuses_large_networks(fmt):
    entries = [
        ("A[0]", "(n[0], m)", "the input", np.zeros((2, 13))),
        ("W[1]", "(n[1], n[0])", "weights", np.zeros((1, 2))),
    ]
    with pytest.raises(ValueError, match=r"too large to print legibly: m = 13;"):
        RENDERERS[fmt](entries)


def test_render_refuses_other_entries():
    with pytest.raises(ValueError, match=r"walkthrough\(\).*A\[0\] and W\[1\]"):
        render_markdown([("Q", "(1, 1)", "", np.zeros((1, 1)))])


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex is not installed (Debian: texlive-latex-base and "
    "texlive-latex-recommended)",
)
@pytest.mark.parametrize(
    "net",
    [((5, 4, 3, 1), 2), ((12, 12, 12), 12), ((1, 1), 1)],
    ids=["5-4-3-1_m2", "12-12-12_m12", "1-1_m1"],
)
def test_render_latex_compiles_with_pdflatex(tmp_path, net):
    (tmp_path / "walkthrough.tex").write_text(render_latex(*make(*net)))
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "walkthrough.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "walkthrough.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (RenderSettings(activation="swish"), r"unknown activation 'swish'"),
        (RenderSettings(cost="hinge"), r"unknown cost 'hinge'"),
    ],
)
def test_render_refuses_unknown_settings(settings, named):
    entries, _ = make(*NETWORKS["5-4-3-1_m2"])
    with pytest.raises(ValueError, match=named + "; expected one of"):
        render_latex(entries, settings)
