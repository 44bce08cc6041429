"""The worked example rendered as the document lays it out, in Markdown or LaTeX.

The input is `walkthrough()`'s list of entries, (name, symbolic dims,
equation text, array) in the document's order: A[0], Y, W[l] and b[l], the
forward pass Z[l], A[l], then dA[L] and, from l = L down to 1, delta[l],
dW[l], db[l] and dA[l-1]. Each becomes an equation whose matrices are
filled with numbers (4 significant digits), followed by its dimensions:

    Z^{[1]} = W^{[1]} A^{[0]} + b^{[1]} = [...] [...] + [...] = [...]
    \\dim(Z^{[1]}) = n^{[1]} \\times m = 4 \\times 2

The operands are printed beside the result while they fit on a line (about
`LINE_CHARS` characters), on a line of their own when they alone fit, and
left out past that; LaTeX scales a line still too wide down to the page.
Every width n[l] and m must be at most `MAX_PRINTED`, or the matrices stop
being readable.

Both formats are built from one list of blocks (headings, paragraphs with
inline `$...$` maths, display equations), so they say the same thing.
"""

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from manual_bp._activations import get_activation

MAX_PRINTED = 12  # largest width n[l] or m whose matrices are printed
# Characters of numbers (with two of spacing per matrix column) that fit on
# one line of an equation: A4 at \small with 1.5 cm margins holds about 110.
LINE_CHARS = 100

# The hidden activations' names in LaTeX; g' is the name followed by '.
_G = {
    "sigmoid": r"\sigma",
    "tanh": r"\tanh",
    "relu": r"\operatorname{relu}",
    "leaky_relu": r"\operatorname{leaky\,relu}",
    "identity": r"\operatorname{id}",
}
_COSTS = {"cross_entropy": "cross-entropy", "quadratic": "quadratic"}
_COST_FORMULAS = {
    "cross_entropy": r"-\frac{1}{m} \sum_{i=1}^{m} \sum_{j=1}^{n^{[L]}} \left["
    r" Y_{ji} \log A^{[L]}_{ji} + (1 - Y_{ji}) \log (1 - A^{[L]}_{ji}) \right]",
    "quadratic": r"\frac{1}{2m} \sum_{i=1}^{m} \sum_{j=1}^{n^{[L]}}"
    r" (A^{[L]}_{ji} - Y_{ji})^2",
}
_TIMES = r" \times "

Entry = tuple[str, str, str, Any]  # (name, symbolic dims, equation, array)
Block = tuple  # ("heading", level, text), ("text", text), ("display", lines)


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How the walkthrough was made, for the text around the equations.

    The widths n[l] and m are read from the entries' arrays.

    Attributes:
      activation: g of the hidden layers, e.g. "sigmoid" or "tanh".
      form: "fused" (delta[L] = A[L] - Y) or "document".
      cost: "cross_entropy" or "quadratic".
      dtype: the arrays' dtype, by name.
      seed: the seed the numbers were drawn from, or None to leave it out.
      C: the cost's value, or None to leave it out.
    """

    activation: str = "sigmoid"
    form: str = "fused"
    cost: str = "cross_entropy"
    dtype: str = "float64"
    seed: int | None = None
    C: float | None = None


# Numbers, matrices, names and dimensions in LaTeX.


def number(x: float) -> str:
    """x with 4 significant digits: 0.1235, -2, 1.5 \\times 10^{-5}."""
    x = float(x)
    if np.isnan(x):
        return r"\mathrm{NaN}"
    if np.isinf(x):
        return r"\infty" if x > 0 else r"-\infty"
    text = f"{x:.4g}"
    if text == "-0":
        return "0"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return mantissa + _TIMES + "10^{" + str(int(exponent)) + "}"
    return text


def bmatrix(a: Any) -> str:
    """A 2-D array as one line `\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}`."""
    rows = np.asarray(a, dtype=float)
    body = r" \\ ".join(" & ".join(number(x) for x in row) for row in rows)
    return r"\begin{bmatrix} " + body + r" \end{bmatrix}"


def symbol(name: str) -> str:
    """A quantity's name in LaTeX: "delta[2]" is \\delta^{[2]}, "Y" is Y."""
    found = re.fullmatch(r"(\w+)\[(\d+)\]", name)
    if found is None:
        return name
    base, l = found.groups()
    return (r"\delta" if base == "delta" else base) + "^{[" + l + "]}"


def dims(symbolic: str, shape: Sequence[int], L: int) -> str:
    """ "(n[1], m)" with shape (4, 2) as n^{[1]} \\times m = 4 \\times 2."""
    parts = symbolic.strip("()").replace("n[L]", f"n[{L}]").split(",")
    parts = [re.sub(r"n\[(\d+)\]", r"n^{[\1]}", p.strip()) for p in parts]
    return _TIMES.join(parts) + " = " + _TIMES.join(map(str, shape))


def check_printable(sizes: Sequence[int], m: int) -> None:
    """Refuses networks whose matrices are too large to print legibly.

    Args:
      sizes: the widths n[0], ..., n[L].
      m: the number of examples.

    Raises:
      ValueError: naming every width n[l], and m, above `MAX_PRINTED`.
    """
    large = [f"n[{l}] = {n}" for l, n in enumerate(sizes) if n > MAX_PRINTED]
    if m > MAX_PRINTED:
        large.append(f"m = {m}")
    if large:
        raise ValueError(
            f"too large to print legibly: {', '.join(large)}; the rendered "
            f"derivation prints every matrix, so every width n[l] and m must "
            f"be at most {MAX_PRINTED} (the text and JSON outputs have no limit)"
        )


# The derivation as blocks: ("heading", level, text), ("text", a paragraph
# with inline $...$ maths), ("display", the LaTeX lines of one equation).


class _Network(NamedTuple):
    """What the equations refer to besides their own result."""

    arrays: dict[str, np.ndarray]  # every entry's array by name
    L: int
    m: int
    settings: RenderSettings


def _width(op: Any) -> int:
    """About how many characters wide an operand prints."""
    if isinstance(op, str):
        return 3
    cols = np.asarray(op, dtype=float).T
    return 2 + sum(2 + max(len(f"{x:.4g}") for x in col) for col in cols)


def _equation(left: str, formula: str | None, operands: list, result: Any) -> Block:
    """left = formula = operands = result, as the lines of one display.

    `operands` mixes LaTeX strings (operators) and arrays (matrices). They
    share the result's line when both fit in `LINE_CHARS`, take a line of
    their own when they alone fit, and are left out otherwise.
    """
    if formula is None:
        return ("display", [f"{left} = {bmatrix(result)}"])
    if not operands:
        return ("display", [f"{left} = {formula} = {bmatrix(result)}"])
    first = f"{left} &= {formula}"
    width = sum(_width(op) for op in operands)
    shown = " ".join(op if isinstance(op, str) else bmatrix(op) for op in operands)
    if width + _width(result) <= LINE_CHARS:
        return ("display", [first, f"&= {shown} = {bmatrix(result)}"])
    if width <= LINE_CHARS:
        return ("display", [first, f"&= {shown}", f"&= {bmatrix(result)}"])
    return ("display", [first, f"&= {bmatrix(result)}"])


def _split(name: str) -> tuple[str, int | None]:
    """ "dW[2]" -> ("dW", 2); "Y" -> ("Y", None)."""
    found = re.fullmatch(r"(\w+)\[(\d+)\]", name)
    return (found.group(1), int(found.group(2))) if found else (name, None)


def _headings(base: str, l: int | None, net: _Network) -> list[Block]:
    """The section headings that open before the quantity base[l]."""
    L, settings = net.L, net.settings
    if (base, l) == ("A", 0):
        return [
            ("heading", 2, "Input data set"),
            (
                "text",
                f"The input $A^{{[0]}}$ holds the $m = {net.m}$ examples as "
                "columns; $Y$ holds their labels.",
            ),
        ]
    if base == "W":
        first = [("heading", 2, "Initial parameters")] if l == 1 else []
        return [*first, ("heading", 3, f"Layer {l}")]
    if base == "Z":
        first = [("heading", 2, "Feed forward")] if l == 1 else []
        return [*first, ("heading", 3, f"Feed forward layer {l}")]
    if (base, l) == ("dA", L):
        formula = _COST_FORMULAS[settings.cost].replace("[L]", f"[{L}]")
        value = "" if settings.C is None else " = " + number(settings.C)
        return [
            ("heading", 2, "Cost"),
            ("display", [f"C = {formula}{value}"]),
            ("heading", 2, "Back propagation"),
            ("heading", 3, f"Back propagation layer {L}"),
        ]
    if base == "delta" and l < L:
        return [("heading", 3, f"Back propagation layer {l}")]
    return []


def _quantity(name: str, a: np.ndarray, net: _Network) -> list[Block]:
    """The equation that gives the quantity `name`, its operands filled in."""
    base, l = _split(name)
    A, L, m, settings = net.arrays, net.L, net.m, net.settings
    s = symbol(name)
    g = _G[settings.activation]
    if base == "Z":
        formula = f"W^{{[{l}]}} A^{{[{l - 1}]}} + b^{{[{l}]}}"
        operands = [A[f"W[{l}]"], A[f"A[{l - 1}]"], "+", A[f"b[{l}]"]]
        return [_equation(s, formula, operands, a)]
    if base == "A" and l:
        g_l = r"\sigma" if l == L else g
        return [_equation(s, f"{g_l}(Z^{{[{l}]}})", [], a)]
    if (base, l) == ("dA", L) and settings.cost == "quadratic":
        operands = [A[f"A[{L}]"], "-", A["Y"]]
        return [_equation(s, f"A^{{[{L}]}} - Y", operands, a)]
    if (base, l) == ("dA", L):
        formula = rf"-\frac{{Y}}{{A^{{[{L}]}}}} + \frac{{1 - Y}}{{1 - A^{{[{L}]}}}}"
        return [
            (
                "text",
                f"The derivative of the cost with respect to $A^{{[{L}]}}$, "
                r"elementwise, for one example; the $\frac{1}{m}$ of the cost "
                "is applied in $dW$ and $db$.",
            ),
            _equation(s, formula, [], a),
        ]
    if base == "delta" and l == L:
        formula = rf"dA^{{[{L}]}} \odot \sigma'(Z^{{[{L}]}})"
        if settings.form == "fused" and settings.cost == "cross_entropy":
            formula += rf" = A^{{[{L}]}} - Y"
            operands = [A[f"A[{L}]"], "-", A["Y"]]
        else:
            operands = [A[f"dA[{L}]"], r"\odot", _g_prime(A[f"Z[{L}]"], "sigmoid")]
        return [_equation(s, formula, operands, a)]
    if base == "delta":
        formula = rf"dA^{{[{l}]}} \odot {g}'(Z^{{[{l}]}})"
        g_prime = _g_prime(A[f"Z[{l}]"], settings.activation)
        operands = [A[f"dA[{l}]"], r"\odot", g_prime]
        return [_equation(s, formula, operands, a)]
    if base == "dW":
        formula = rf"\frac{{1}}{{m}} \delta^{{[{l}]}} A^{{[{l - 1}]T}}"
        operands = [rf"\frac{{1}}{{{m}}}", A[f"delta[{l}]"], A[f"A[{l - 1}]"].T]
        return [_equation(s, formula, operands, a)]
    if base == "db":
        formula = rf"\frac{{1}}{{m}} \delta^{{[{l}]}} \mathbf{{1}}_m"
        operands = [rf"\frac{{1}}{{{m}}}", A[f"delta[{l}]"], np.ones((m, 1))]
        return [_equation(s, formula, operands, a)]
    if base == "dA":
        formula = rf"W^{{[{l + 1}]T}} \delta^{{[{l + 1}]}}"
        operands = [A[f"W[{l + 1}]"].T, A[f"delta[{l + 1}]"]]
        return [_equation(s, formula, operands, a)]
    return [_equation(s, None, [], a)]  # A[0], Y, W[l], b[l]


def _g_prime(Z: np.ndarray, activation: str) -> np.ndarray:
    """g'(Z[l]) by the same hand-written derivative as the backward pass."""
    return np.asarray(get_activation(activation).g_prime(Z))


def _blocks(entries: Sequence[Entry], settings: RenderSettings) -> list[Block]:
    """The headings, paragraphs and equations of the whole derivation."""
    arrays = {name: np.asarray(a) for name, _, _, a in entries}
    if "A[0]" not in arrays or "W[1]" not in arrays:
        raise ValueError(
            "expected the entries of walkthrough(), A[0] and W[1] among them; "
            f"got the names: {', '.join(arrays) or 'none'}"
        )
    for field, known in (("activation", _G), ("cost", _COST_FORMULAS)):
        if getattr(settings, field) not in known:
            raise ValueError(
                f"unknown {field} {getattr(settings, field)!r}; expected one "
                f"of: {', '.join(known)}"
            )
    L = sum(1 for name in arrays if _split(name)[0] == "W")
    n0, m = arrays["A[0]"].shape
    sizes = [n0, *(arrays[f"W[{l}]"].shape[0] for l in range(1, L + 1))]
    check_printable(sizes, m)
    net = _Network(arrays, L, m, settings)

    widths = ", ".join(f"$n^{{[{l}]}} = {n}$" for l, n in enumerate(sizes))
    about = [
        f"hidden activation ${_G[settings.activation]}$",
        "sigmoid output",
        f"{_COSTS[settings.cost]} cost",
        f"{settings.form} form",
        settings.dtype,
    ]
    if settings.seed is not None:
        about.append(f"seed {settings.seed}")
    blocks: list[Block] = [
        ("heading", 1, "Back propagation example"),
        (
            "text",
            f"One cycle of back propagation through a network of {L} layers, "
            f"{widths}, on $m = {m}$ examples stacked as columns; "
            f"{', '.join(about)}. Numbers are rounded to 4 significant digits.",
        ),
    ]
    for name, symbolic, _, a in entries:
        a = np.asarray(a)
        base, l = _split(name)
        blocks.extend(_headings(base, l, net))
        blocks.extend(_quantity(name, a, net))
        blocks.append(
            ("text", rf"$\dim({symbol(name)}) = {dims(symbolic, a.shape, L)}$")
        )
        if (base, l) == ("Z", 1):
            blocks.append(
                (
                    "text",
                    "The bias column $b^{[l]}$ is broadcast across the $m$ "
                    "columns in the addition.",
                )
            )
    blocks.append(
        (
            "text",
            r"The outputs of the cycle are $dW^{[l]} = \frac{dC}{dW^{[l]}}$ and "
            rf"$db^{{[l]}} = \frac{{dC}}{{db^{{[l]}}}}$ for $l = 1, \dots, {L}$.",
        )
    )
    return blocks


# The two formats.


def render_markdown(
    entries: Sequence[Entry], settings: RenderSettings = RenderSettings()
) -> str:
    """The derivation in Markdown with `$...$` and `$$ ... $$` maths.

    Renders on GitHub: every display is a `$$` block of its own, with no
    blank line inside, and multi-line equations use `aligned`.

    Args:
      entries: `walkthrough(...)["entries"]`, (name, symbolic dims,
        equation text, array) in the document's order.
      settings: how the walkthrough was made.

    Returns:
      The Markdown text, ending with a newline.

    Raises:
      ValueError: if a width n[l] or m is above `MAX_PRINTED`, the entries
        lack A[0] or W[1], or the activation or cost is unknown.
    """
    out = []
    for block in _blocks(entries, settings):
        if block[0] == "heading":
            out.append("#" * block[1] + " " + block[2])
        elif block[0] == "text":
            out.append(block[1])
        else:
            out.append("$$\n" + _display(block[1]) + "\n$$")
    return "\n\n".join(out) + "\n"


_PREAMBLE = r"""\documentclass[a4paper]{article}
\usepackage[margin=1.5cm]{geometry}
\usepackage{amsmath}
\usepackage{graphicx}
\setcounter{MaxMatrixCols}{20}
\setlength{\parindent}{0pt}
% An equation wider than the line is scaled down to fit it.
\newsavebox{\eqbox}
\newenvironment{fiteq}
  {\par\medskip\begin{lrbox}{\eqbox}$\displaystyle}
  {$\end{lrbox}\ifdim\wd\eqbox>\linewidth
    \resizebox{\linewidth}{!}{\usebox{\eqbox}}%
  \else
    \makebox[\linewidth][c]{\usebox{\eqbox}}%
  \fi\par\medskip}
"""


def render_latex(
    entries: Sequence[Entry], settings: RenderSettings = RenderSettings()
) -> str:
    """The derivation as a standalone LaTeX document (pdflatex, amsmath).

    Args:
      entries: `walkthrough(...)["entries"]`, (name, symbolic dims,
        equation text, array) in the document's order.
      settings: how the walkthrough was made.

    Returns:
      The document, from `\\documentclass` to `\\end{document}`.

    Raises:
      ValueError: if a width n[l] or m is above `MAX_PRINTED`, the entries
        lack A[0] or W[1], or the activation or cost is unknown.
    """
    commands = {1: "section*", 2: "subsection*", 3: "subsubsection*"}
    out = [_PREAMBLE + r"\begin{document}" + "\n" + r"\small"]
    for block in _blocks(entries, settings):
        if block[0] == "heading":
            out.append("\\" + commands[block[1]] + "{" + block[2] + "}")
        elif block[0] == "text":
            out.append(_latex_text(block[1]))
        else:
            out.append(
                r"\begin{fiteq}" + "\n" + _display(block[1]) + "\n" + r"\end{fiteq}"
            )
    out.append(r"\end{document}")
    return "\n\n".join(out) + "\n"


def _display(lines: list[str]) -> str:
    """One equation's lines, in `aligned` when there are several."""
    if len(lines) == 1:
        return lines[0]
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def _latex_text(text: str) -> str:
    """A paragraph with its LaTeX specials escaped outside `$...$` maths."""
    parts = text.split("$")
    for i in range(0, len(parts), 2):  # the even parts are outside maths
        parts[i] = re.sub(r"([_%&#])", r"\\\1", parts[i])
    return "$".join(parts)
