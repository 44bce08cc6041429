"""Input and output: the parameter, data and gradient files of the command line.

Parameters are stored in an `.npz` archive with keys W1, b1, ..., WL, bL,
W[l] of shape (n[l], n[l-1]) and b[l] of shape (n[l], 1). Data is either an
`.npz` archive with keys X (n[0], m) and Y (1, m), or a `.csv` file with one
example per row, the features first and the label in the last column.
Gradients are written with keys dW1, db1, ..., dWL, dbL.

Every bad file or bad content raises `InputError`, whose message names the
file, the array in the document's notation (W[2], b[1], X, Y), the expected
and the actual shape or value. Several problems are joined by newlines.
Pickled objects are never loaded.
"""

import csv
import os
import secrets
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manual_bp._params import Layer, check_shapes, layers

PathLike = str | os.PathLike


class InputError(ValueError):
    """A file or its content cannot be used; the message is for the user."""


# Writing.


def save_params(path: PathLike, params: Any) -> None:
    """Writes the parameters to an `.npz` archive with keys W1, b1, ..., WL, bL.

    Args:
      path: the file to write, exactly as given (no suffix is added).
      params: L layers in any layout `manual_bp.layers` accepts, W[l] of
        shape (n[l], n[l-1]) and b[l] of shape (n[l], 1).

    Raises:
      ValueError: if the parameters' shapes or dtypes do not chain (the
        file would be refused when read back).
      InputError: if an entry is NaN or infinite (worded as `load_params`
        words it, e.g. "P.npz: W[2] has a NaN at (0, 1)"), if `path` exists
        and is not a regular file (a directory, a device, a FIFO), or if the
        file cannot be written; nothing is written then. A symbolic link is
        written through.
    """
    check_shapes(params)
    arrays = {}
    for l, (W, b) in enumerate(layers(params), start=1):
        arrays[f"W{l}"] = np.asarray(W)
        arrays[f"b{l}"] = np.asarray(b)
    problems = [
        f"{os.fspath(path)}: {problem}"
        for key, a in arrays.items()
        if (problem := _nonfinite(_notation(key), a)) is not None
    ]
    if problems:  # load_params would refuse the file
        raise InputError("\n".join(problems))
    _write_npz(path, arrays)


def save_grads(path: PathLike, grads: Any) -> None:
    """Writes the gradients to an `.npz` archive with keys dW1, db1, ..., dbL.

    Args:
      path: the file to write, exactly as given (no suffix is added).
      grads: L layers of (dW[l], db[l]) in any layout `manual_bp.layers`
        accepts, dW[l] of shape (n[l], n[l-1]) and db[l] of shape (n[l], 1).

    Raises:
      InputError: if `path` exists and is not a regular file (a directory,
        a device, a FIFO), or the file cannot be written; nothing is left
        behind. A symbolic link is written through.
    """
    arrays = {}
    for l, (dW, db) in enumerate(layers(grads), start=1):
        arrays[f"dW{l}"] = np.asarray(dW)
        arrays[f"db{l}"] = np.asarray(db)
    _write_npz(path, arrays)


def _write_npz(path: PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Writes `arrays` to `path` atomically, as `write_atomically` does."""
    # A file object: np.savez appends no ".npz" to its name.
    write_atomically(path, lambda file: np.savez(file, **arrays))


def write_atomically(path: PathLike, write: Callable[[Any], None]) -> None:
    """Calls `write` on a temporary file, then renames that onto `path`.

    The temporary file sits in the directory of the file `path` resolves to,
    so `os.replace` is a rename within one file system, and a symbolic link
    at `path` stays a link to the new content. It is created with the usual
    permissions (0o666 less the umask), as `open` would.

    Raises:
      InputError: if `path` exists and is not a regular file (a directory,
        a device, a FIFO, a socket), names a directory, or cannot be
        written; nothing is left behind.
    """
    path = os.fspath(path)
    if (problem := output_problem(path)) is not None:
        raise InputError(f"{path}: {problem}" if path else problem)
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise InputError(f"{path}: cannot write: {_reason(err)}") from err
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise InputError(f"{path}: cannot write: {_reason(err)}") from err
        raise


# The kinds of file that are not regular, as `output_problem` names them.
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def output_problem(path: PathLike) -> str | None:
    """Why `path` cannot be replaced by a regular file, or None if it can.

    A path that does not exist, a regular file, or a symbolic link to
    either can be written; anything else an atomic write would destroy
    (a device node replaced by a plain file) or cannot replace.
    """
    path = os.fspath(path)
    if not path:
        return "the path is empty"
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except (FileNotFoundError, NotADirectoryError):
        mode = None  # nothing there; the directory is checked apart
    except OSError as err:
        return f"cannot be checked: {_reason(err)}"
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((k for test, k in _FILE_KINDS if test(mode)), "not a file")
        return f"exists and is not a regular file ({kind})"
    if os.path.basename(path) in ("", ".", ".."):
        return "names a directory, not a file; give a file name"
    return None


# Reading parameters.


def load_params(path: PathLike, dtype: Any = None) -> tuple[Layer, ...]:
    """Reads the parameters written by `save_params` and checks them.

    Args:
      path: an `.npz` archive with exactly the keys W1, b1, ..., WL, bL for
        one L >= 1, W[l] of shape (n[l], n[l-1]) and b[l] of shape (n[l], 1).
      dtype: a floating dtype or its name ("float32") to cast every array
        to; None keeps the file's dtype, which must then be floating.

    Returns:
      A tuple of L `Layer`s of jax arrays.

    Raises:
      InputError: if the file cannot be read, its keys are not exactly
        W1, b1, ..., WL, bL, an array is pickled or not numeric, an entry is
        NaN or infinite (after the cast), or the shapes or dtypes do not
        chain as `check_shapes` requires. A flat bias (n[l],) is refused,
        never reshaped.
    """
    path = os.fspath(path)
    with _open_npz(path) as archive:
        L = _check_param_keys(path, archive.files)
        keys = [key for l in range(1, L + 1) for key in (f"W{l}", f"b{l}")]
        arrays = _read_arrays(path, archive, keys)
    arrays = {key: _cast(path, _notation(key), a, dtype) for key, a in arrays.items()}

    problems = [
        f"{path}: {problem}"
        for key, a in arrays.items()
        if (problem := _nonfinite(_notation(key), a)) is not None
    ]
    if problems:
        raise InputError("\n".join(problems))

    params = tuple(Layer(arrays[f"W{l}"], arrays[f"b{l}"]) for l in range(1, L + 1))
    try:
        check_shapes(params)
    except ValueError as err:
        lines = str(err).splitlines()
        raise InputError("\n".join(f"{path}: {line}" for line in lines)) from None
    return tuple(Layer(jnp.asarray(W), jnp.asarray(b)) for W, b in params)


def _check_param_keys(path: str, keys: list[str]) -> int:
    """Returns L if `keys` are exactly W1, b1, ..., WL, bL; raises otherwise.

    L is the longer of the unbroken runs W1, W2, ... and b1, b2, ..., so a
    stray W9 next to W1, W2 is reported as unexpected, not as seven missing
    layers.
    """
    present = set(keys)
    L = max(1, *(_run_length(prefix, present) for prefix in "Wb"))
    expected = [key for l in range(1, L + 1) for key in (f"W{l}", f"b{l}")]
    missing = [key for key in expected if key not in present]
    extra = [key for key in keys if key not in expected]
    if missing or extra:
        raise InputError(
            f"{path}: {_key_problems(missing, extra)} (expected "
            f"{', '.join(expected)} for L = {L} {_plural(L, 'layer')})"
        )
    return L


def _run_length(prefix: str, keys: set[str]) -> int:
    n = 0
    while f"{prefix}{n + 1}" in keys:
        n += 1
    return n


# Reading data.


def load_data(path: PathLike, dtype: Any = None) -> tuple[jax.Array, jax.Array]:
    """Reads a data set and checks it with `check_data`.

    Args:
      path: an `.npz` archive with exactly the keys X (n[0], m) and Y (1, m),
        or a `.csv` file with one example per row: its n[0] features, then
        its label in the last column, comma separated, with an optional
        header row of names. Blank lines are skipped.
      dtype: a dtype or its name ("float32") to cast X and Y to; None keeps
        the file's dtype (float64 for a `.csv`).

    Returns:
      (X, Y) as jax arrays, X of shape (n[0], m) and Y of shape (1, m) for a
      `.csv`, (n[L], m) as stored for an `.npz`.

    Raises:
      InputError: for another extension, an unreadable file, missing or
        extra keys, a pickled array, a ragged or non-numeric CSV row, or any
        problem `check_data` reports.
    """
    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        X, Y = _read_data_npz(path)
    elif suffix == ".csv":
        X, Y = _read_data_csv(path)
    else:
        raise InputError(
            f"{path}: unknown extension {suffix or '(none)'!r}; expected .npz "
            "(keys X and Y) or .csv (one example per row, label last)"
        )
    X, Y = _cast(path, "X", X, dtype), _cast(path, "Y", Y, dtype)
    check_data(X, Y, source=path)
    return jnp.asarray(X), jnp.asarray(Y)


def _read_data_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    with _open_npz(path) as archive:
        missing = [key for key in ("X", "Y") if key not in archive.files]
        extra = [key for key in archive.files if key not in ("X", "Y")]
        if missing or extra:
            raise InputError(
                f"{path}: {_key_problems(missing, extra)} (expected exactly X, Y)"
            )
        arrays = _read_arrays(path, archive, ["X", "Y"])
    return arrays["X"], arrays["Y"]


def _read_data_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads one example per row and returns X (n[0], m) and Y (1, m)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            numbered = list(_numbered_rows(file))
    except OSError as err:
        raise InputError(f"{path}: cannot read: {_reason(err)}") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: cannot read: not UTF-8 text ({err})") from err
    except csv.Error as err:
        raise InputError(f"{path}: cannot read as CSV: {err}") from err

    header = None
    if numbered and _is_header(path, *numbered[0]):
        header, numbered = numbered[0], numbered[1:]
    rows, problems = _parse_rows(numbered, header)
    if problems:
        raise InputError("\n".join(f"{path}: {problem}" for problem in problems))

    if rows:
        table = np.array(rows, dtype=np.float64)  # (m, n[0] + 1)
    else:
        width = len(header[1]) if header else 1
        table = np.zeros((0, max(width, 1)), dtype=np.float64)
    return table[:, :-1].T.copy(), table[:, -1:].T.copy()


def _numbered_rows(file: Any) -> Iterator[tuple[int, list[str]]]:
    """Yields (line, cells) for every non-blank row, line counted from 1."""
    reader = csv.reader(file)
    start = 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield start, cells
        start = reader.line_num + 1


def _is_header(path: str, line: int, cells: list[str]) -> bool:
    """True if every cell is text, False if every cell is a number."""
    numeric = [_is_number(cell) for cell in cells]
    if all(numeric):
        return False
    if not any(numeric):
        return True
    numbers = ", ".join(repr(c) for c, n in zip(cells, numeric, strict=True) if n)
    raise InputError(
        f"{path}: line {line} mixes numbers ({numbers}) with text; expected "
        "either a header of names only or a data row of numbers only"
    )


def _parse_rows(
    numbered: list[tuple[int, list[str]]], header: tuple[int, list[str]] | None
) -> tuple[list[list[float]], list[str]]:
    """Converts the data rows to floats, collecting every problem found."""
    if not numbered:
        return [], []
    first_line, first = numbered[0]
    width = len(first)
    problems = []
    if width < 2:
        problems.append(
            f"line {first_line} has {_count(width, 'cell')}, expected at least 2: the "
            "features, then the label in the last column"
        )
    if header is not None and len(header[1]) != width:
        problems.append(
            f"line {header[0]} (header) has {_count(len(header[1]), 'cell')}, expected "
            f"{width} like line {first_line}, the first data row"
        )
    rows = []
    for line, cells in numbered:
        if len(cells) != width:
            problems.append(
                f"line {line} has {_count(len(cells), 'cell')}, expected {width} like "
                f"line {first_line}, the first data row"
            )
            continue
        row = []
        for column, cell in enumerate(cells, start=1):
            value = _to_float(cell)
            if value is None or not np.isfinite(value):
                what = "a number" if value is None else "a finite number"
                problems.append(f"line {line}, column {column}: {cell!r} is not {what}")
            row.append(value)
        rows.append(row)
    return rows, problems


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_number(cell: str) -> bool:
    return _to_float(cell) is not None


# Checking data.


def check_data(X: Any, Y: Any, source: str = "data") -> None:
    """Checks that X and Y are a data set in the document's layout.

    Every problem found is reported, not only the first, each line starting
    with `source`, for example ``D.npz: Y has shape (4,), expected (n[L], m)
    = (1, 4): examples go in columns; pass Y.reshape(1, -1)``.

    Args:
      X: A[0], of shape (n[0], m), one example per column, m >= 1.
      Y: the labels, of shape (n[L], m), every entry in [0, 1].
      source: the file name (or other origin) that starts every message.

    Raises:
      InputError: listing every problem.
    """
    X, Y = np.asarray(X), np.asarray(Y)
    problems = [*_layout_problems(X.shape, Y.shape)]
    for name, a in (("X", X), ("Y", Y)):
        if not _is_real(a.dtype):
            problems.append(
                f"{name} has dtype {a.dtype}, expected a real numeric dtype"
            )
        elif (problem := _nonfinite(name, a)) is not None:
            problems.append(problem)
    if _is_real(Y.dtype) and (problem := _label_problem(Y)) is not None:
        problems.append(problem)
    if problems:
        raise InputError("\n".join(f"{source}: {problem}" for problem in problems))


def _layout_problems(x_shape: tuple, y_shape: tuple) -> Iterator[str]:
    """Yields the shape problems of X (n[0], m) and Y (n[L], m)."""
    m = None
    if len(x_shape) != 2:
        yield f"X has shape {x_shape}, expected (n[0], m): one example per column"
    else:
        m = x_shape[1]
        if m == 0:
            yield (
                f"X has m = 0 examples: shape {x_shape}, expected (n[0], m) "
                "with m >= 1 columns"
            )
    if m is None:
        if len(y_shape) != 2:
            yield f"Y has shape {y_shape}, expected (n[L], m): one example per column"
    elif y_shape == (m,):
        yield (
            f"Y has shape {y_shape}, expected (n[L], m) = (1, {m}): examples go "
            "in columns; pass Y.reshape(1, -1)"
        )
    elif len(y_shape) == 2 and y_shape[0] == m and y_shape[1] != m:
        yield (
            f"Y has shape {y_shape}, expected (n[L], m) = ({y_shape[1]}, {m}): "
            "examples go in columns; pass Y.T"
        )
    elif len(y_shape) != 2:
        yield f"Y has shape {y_shape}, expected (n[L], m) = (n[L], {m})"
    elif y_shape[1] != m:
        yield (
            f"X has shape {x_shape} and Y has shape {y_shape}: expected the same "
            f"number of examples (columns), m = {m} in X but {y_shape[1]} in Y"
        )


def _label_problem(Y: np.ndarray) -> str | None:
    """Describes the first finite label outside [0, 1], if any."""
    outside = np.isfinite(Y) & ((Y < 0) | (Y > 1))
    if not outside.any():
        return None
    index = _first(outside)
    count = int(outside.sum())
    more = f" ({count - 1} more outside)" if count > 1 else ""
    return f"Y has {Y[index].item()!r} at {index}, expected a label in [0, 1]{more}"


# Shared helpers.


def _open_npz(path: str) -> np.lib.npyio.NpzFile:
    """Opens an `.npz` archive without pickle, or raises InputError."""
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError as err:
        raise InputError(f"{path}: cannot read: {_reason(err)}") from err
    except EOFError as err:
        raise InputError(f"{path}: cannot read: the file is empty") from err
    except (ValueError, zipfile.BadZipFile) as err:
        raise InputError(
            f"{path}: cannot read: not an .npz archive as np.savez writes "
            "(pickled data is never loaded)"
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(
            f"{path}: holds a single array of shape {archive.shape}, expected "
            "an .npz archive of named arrays as np.savez writes"
        )
    return archive


def _read_arrays(
    path: str, archive: np.lib.npyio.NpzFile, keys: list[str]
) -> dict[str, np.ndarray]:
    """Reads `keys` from `archive`, reporting every array that cannot be read."""
    arrays, problems = {}, []
    for key in keys:
        try:
            a = archive[key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            a, reason = None, str(err)
        else:
            reason = "not an array as np.save writes it"  # numpy hands back bytes
        if not isinstance(a, np.ndarray):
            problems.append(
                f"{path}: {_notation(key)} cannot be read ({reason}); expected a "
                "numeric array, and pickled object arrays are never loaded"
            )
        else:
            arrays[key] = a
    if problems:
        raise InputError("\n".join(problems))
    return arrays


def _cast(path: str, name: str, a: np.ndarray, dtype: Any) -> np.ndarray:
    """Casts a real numeric `a` to `dtype`; other arrays are left to the checks.

    Raises:
      InputError: if a finite entry is too large for `dtype` and would turn
        into an infinity the file does not hold.
    """
    if dtype is None or not _is_real(a.dtype):
        return a
    with np.errstate(over="ignore"):
        cast = a.astype(np.dtype(dtype))
    overflow = np.isfinite(a) & ~np.isfinite(cast)
    if overflow.any():
        index = _first(overflow)
        raise InputError(
            f"{path}: {name} has {a[index]:g} at {index}, beyond the range of "
            f"{np.dtype(dtype)} (largest {np.finfo(dtype).max:g}); read it as "
            "float64 (--dtype float64 on the command line)"
        )
    return cast


def _nonfinite(name: str, a: np.ndarray) -> str | None:
    """Describes the first NaN or infinite entry of `a`, if any."""
    if not jnp.issubdtype(a.dtype, jnp.floating):
        return None
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    index = _first(bad)
    value = a[index]
    what = "a NaN" if np.isnan(value) else "a -inf" if value < 0 else "an inf"
    count = int(bad.sum())
    more = f" ({count - 1} more non-finite)" if count > 1 else ""
    return f"{name} has {what} at {index}{more}"


def _is_real(dtype: np.dtype) -> bool:
    """True for bool, integer and floating dtypes (bfloat16 included)."""
    return dtype == np.bool_ or any(
        jnp.issubdtype(dtype, kind) for kind in (jnp.integer, jnp.floating)
    )


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """The index of the first True entry of `mask`, in row-major order."""
    return tuple(int(i) for i in np.unravel_index(np.argmax(mask), mask.shape))


def _notation(key: str) -> str:
    """The document's name of a stored array: "W2" -> "W[2]", "X" -> "X"."""
    if len(key) > 1 and key[0] in "Wb" and key[1:].isdigit():
        return f"{key[0]}[{key[1:]}]"
    return key


def _key_problems(missing: list[str], extra: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected keys: {', '.join(extra)}")
    return "; ".join(parts)


def _plural(n: int, noun: str) -> str:
    """`noun` for one, `noun`s otherwise: "cell", "cells"."""
    return noun if n == 1 else f"{noun}s"


def _count(n: int, noun: str) -> str:
    """ "1 cell", "3 cells"."""
    return f"{n} {_plural(n, noun)}"


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def check_output_paths(
    outputs: dict[str, PathLike | None], inputs: dict[str, PathLike | None]
) -> None:
    """Checks, before any work, that the command's outputs can be written.

    Args:
      outputs: flag -> path to write (None: not asked for), e.g.
        {"--out": "grads.npz"}.
      inputs: flag -> path read, which no output may replace.

    Raises:
      InputError: for an empty path, a path that exists and is not a
        regular file (or a symbolic link to one), a path that names a
        directory ("out/", "."), a directory that does not exist, is not a
        directory or is not writable, two outputs on one path, or an output
        on an input.
    """
    seen: dict[str, str] = {}
    for flag, path in inputs.items():
        if path is not None and os.path.exists(path):
            seen[os.path.realpath(path)] = f"{flag}, which is read"
    for flag, path in outputs.items():
        if path is None:
            continue
        if not os.fspath(path):
            raise InputError(f"{flag}: the path is empty")
        if (problem := output_problem(path)) is not None:
            raise InputError(f"{flag} {path}: {problem}")
        real = os.path.realpath(path)  # a symbolic link is written through
        directory = Path(real).parent
        if not directory.is_dir():
            if directory.exists():
                raise InputError(f"{flag} {path}: {directory} is not a directory")
            raise InputError(f"{flag} {path}: the directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            raise InputError(
                f"{flag} {path}: the directory {directory} is not writable"
            )
        if real in seen:
            raise InputError(
                f"{flag} {path}: the same file as {seen[real]}; writing it would "
                "destroy that, so give another path"
            )
        seen[real] = flag


def check_suffix(flag: str, path: PathLike | None, suffix: str, writes: str) -> None:
    """Refuses an output whose name does not end in what is written there.

    Args:
      flag: the option, e.g. "--out".
      path: its path; None (not asked for) passes.
      suffix: the suffix the content has, e.g. ".npz"; any case passes.
      writes: the message's middle, e.g. "grad writes an .npz archive".

    Raises:
      InputError: e.g. "--out g.csv: grad writes an .npz archive; name it
        .npz".
    """
    if path is None:
        return
    if not os.fspath(path).lower().endswith(suffix):
        raise InputError(f"{flag} {path}: {writes}; name it {suffix}")
    # A symbolic link is written through: its target must fit the content too.
    target = os.path.realpath(path)
    if not target.lower().endswith(suffix):
        raise InputError(
            f"{flag} {path}: a link to {target}; {writes}, and writing through "
            f"the link would overwrite that file: link to a {suffix} file or "
            "give another path"
        )
