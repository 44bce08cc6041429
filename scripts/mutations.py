"""Injects each classic derivation mistake and asks the checker to find it.

The network has widths (5, 3, 4, 1) and m = 3 examples: every width
differs, and n[1] = m makes layer 2 square, where a missing transpose
type-checks. Hidden layers are sigmoid, except relu (with a row of W[1] and
b[1] set to zero, so that a row of Z[1] is exactly 0) for the relu mistake.
The clean derivation is checked first; then each mistake, against autodiff
(where does it first go wrong?) and against finite differences.

    python scripts/mutations.py --seed 0 --json mutations.json

prints (the descriptions cut short here)

    clean derivation, sigmoid hidden: every quantity of the derivation ...
    clean derivation, relu hidden: every quantity of the derivation ...

    | mistake | what is wrong | expected | caught | named | finite differences |
    |---|---|---|---|---|---|
    | sign_slip_dA_L | dA[L] = +Y/A[L] + ... | dA[3] | yes | dA[3] | yes (28/28) |
    ...
    | relu_slope_1_at_0 | relu'(z) = 1 ... | delta[1] | yes | delta[1] | n.a. (...) |

    12/12 caught, 100%
    12/12 named at the expected quantity

and exits 1 if the clean derivation fails, or any mistake is not caught or
is named at another quantity than expected. A mistake can have no effect on
a network, and then nothing can catch it: seeds 7 and 30 (of 0 to 30) draw
a relu network whose layer 2 is dead on every example, so no gradient
reaches Z[1] and relu_slope_1_at_0 changes nothing; the table says so.
"""

import argparse
import itertools
import json
import sys

import jax

jax.config.update("jax_enable_x64", True)  # the checker's float64 tolerances
jax.config.update("jax_numpy_rank_promotion", "raise")  # as the test suite

import jax.numpy as jnp  # noqa: E402  (after the settings above)
import numpy as np  # noqa: E402

import manual_bp as mb  # noqa: E402
from manual_bp._arguments import check_outputs  # noqa: E402
from manual_bp._arguments import seed as seed_type  # noqa: E402
from manual_bp._io import write_atomically  # noqa: E402
from manual_bp._mistakes import MISTAKES, mistaken_derivation  # noqa: E402

SIZES = (5, 3, 4, 1)  # n[0..3], every width different
M = 3  # = n[1]: layer 2 is the one square layer

# mistake: the first quantity, in the derivation's order, that must differ
EXPECTED = {
    "sign_slip_dA_L": "dA[3]",  # dA[L] is the first backward quantity
    "missing_1_over_m": "dW[3]",  # dA and delta carry no 1/m
    "double_1_over_m": "dW[3]",  # likewise
    "missing_transpose_dW": "dW[2]",  # layer 2 is the only square one
    "missing_transpose_dA": "dA[1]",  # = delta[2].T @ W[2], at l = 2 only
    "elementwise_for_matmul": "dW[3]",  # every layer, and m > 1
    "sigma_prime_twice": "delta[3]",  # dA[3] is still right
    "g_prime_at_A": "delta[2]",  # the first hidden delta
    "db_wrong_axis": "db[3]",  # shape (1, m) = (1, 3), expected (1, 1)
    "bias_wrong_axis": "Z[1]",  # n[1] = m: layer 1's bias only
    "wrong_layer_cache": "delta[2]",  # n[3] = 1 broadcasts g'(Z[3])
    "relu_slope_1_at_0": "delta[1]",  # only Z[1] holds exact zeros
}


def network(seed: int, relu: bool = False):
    """Seeded float64 (params, X, Y), biases nonzero, labels 0 and 1.

    With `relu`, row 0 of W[1] and of b[1] is zero, so Z[1][0, :] = 0.
    """
    rng = np.random.default_rng(seed)
    params = [
        mb.Layer(
            jnp.asarray(rng.normal(size=(n, n_prev)) / np.sqrt(n_prev)),
            jnp.asarray(0.5 * rng.normal(size=(n, 1))),
        )
        for n_prev, n in itertools.pairwise(SIZES)
    ]
    if relu:
        W, b = params[0]
        params[0] = mb.Layer(W.at[0].set(0.0), b.at[0].set(0.0))
    X = jnp.asarray(rng.normal(size=(SIZES[0], M)))
    # Both classes: the sign slip's +Y/A[L] vanishes where a label is 0.
    labels = rng.permutation(np.arange(SIZES[-1] * M) % 2)
    Y = jnp.asarray(labels.reshape(SIZES[-1], M), jnp.float64)
    return tuple(params), X, Y


def settings_for(mistake: str) -> tuple[str, str]:
    """(activation, form) the mistake is run with."""
    activation = "relu" if mistake == "relu_slope_1_at_0" else "sigmoid"
    # With the fused form delta[L] = A[L] - Y never reads dA[L].
    form = "document" if mistake == "sign_slip_dA_L" else "fused"
    return activation, form


def fd_verdict(report: mb.Report) -> str:
    """Whether finite differences flag the mistake, or why they cannot."""
    if all(r.ok for r in report.rows if r.name[:2] in ("dW", "db")):
        return "n.a. (dW, db right)"
    entries = report.finite_differences
    if report.fd_failures:
        return f"yes ({len(report.fd_failures)}/{len(entries)})"
    differing = [e for e in entries if not e.ok]
    if differing and all(e.kink for e in differing):
        return "n.a. (the differing steps cross the relu kink)"
    return "no"


def has_effect(d: mb.Derivation, clean: mb.Derivation) -> bool:
    """Whether any quantity of `d` differs from the clean derivation's."""
    rtol, atol = mb.tolerance(np.float64)
    return any(
        np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=rtol, atol=atol)
        for field_d, field_clean in zip(d, clean, strict=True)
        for a, b in zip(field_d, field_clean, strict=True)
        if a is not None
    )


def run_one(mistake: str, seed: int) -> dict:
    activation, form = settings_for(mistake)
    params, X, Y = network(seed, relu=activation == "relu")
    d = mistaken_derivation(params, X, Y, mistake, activation, "cross_entropy", form)
    args = (params, X, Y, activation, "cross_entropy", form)
    report = mb.check(*args, hand_written=d, seed=seed)
    fd = fd_verdict(report)
    first = report.first_divergence
    clean = mb.derivation(params, X, Y, activation, form)
    return {
        "mistake": mistake,
        "description": MISTAKES[mistake],
        "activation": activation,
        "form": form,
        "expected": EXPECTED[mistake],
        "caught": not report.ok,
        "named": None if first is None else first.name,
        "finite_differences": fd,
        "has_effect": has_effect(d, clean),
    }


def caught_cell(row: dict) -> str:
    if row["caught"]:
        return "yes"
    return "no" if row["has_effect"] else "no (no effect on this network)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=seed_type, default=0, help="draws the network")
    parser.add_argument("--json", metavar="FILE", help="also write the results")
    args = parser.parse_args(argv)
    check_outputs(parser, {"--json": (args.json, ".json", "mutations.py writes JSON")})

    clean = []
    for activation in ("sigmoid", "relu"):
        params, X, Y = network(args.seed, relu=activation == "relu")
        report = mb.check(params, X, Y, activation, seed=args.seed)
        clean.append({"activation": activation, "ok": report.ok})
        print(f"clean derivation, {activation} hidden: {report.verdict}")

    rows = [run_one(mistake, args.seed) for mistake in MISTAKES]
    print()
    print(
        "| mistake | what is wrong | expected | caught | named | finite differences |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mistake']} | {r['description']} | {r['expected']} | "
            f"{caught_cell(r)} | {r['named'] or '-'} | "
            f"{r['finite_differences']} |"
        )
    caught = sum(r["caught"] for r in rows)
    named = sum(r["named"] == r["expected"] for r in rows)
    print()
    print(f"{caught}/{len(rows)} caught, {100 * caught / len(rows):.0f}%")
    print(f"{named}/{len(rows)} named at the expected quantity")

    if args.json:
        text = json.dumps(
            {
                "seed": args.seed,
                "sizes": list(SIZES),
                "m": M,
                "clean": clean,
                "mistakes": rows,
                "caught": caught,
                "named_as_expected": named,
                "total": len(rows),
            },
            indent=2,
        ).encode()
        write_atomically(args.json, lambda file: file.write(text))
    ok = all(c["ok"] for c in clean) and caught == named == len(rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
