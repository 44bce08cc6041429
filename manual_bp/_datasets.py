"""Data sets shipped inside the package.

`breast-cancer`: the Breast Cancer Wisconsin (Diagnostic) data, 569
examples of 30 features and a binary diagnosis (1 = malignant, 0 = benign),
from the UCI Machine Learning Repository (doi:10.24432/C5DW2B, CC BY 4.0).
Its source, licence and layout are stated in `manual_bp/data/README.md`.
The file is in the CSV layout `manual_bp.load_data` reads, which reads it.
"""

from importlib import resources
from typing import Any

import jax
import numpy as np

from manual_bp._io import load_data
from manual_bp._params import DTYPES

BREAST_CANCER = "breast-cancer"
DATASETS = (BREAST_CANCER,)
_FILES = {BREAST_CANCER: "breast_cancer.csv"}


def load_breast_cancer(dtype: Any = None) -> tuple[jax.Array, jax.Array]:
    """The Wisconsin diagnostic breast cancer data, examples in columns.

    Args:
      dtype: the dtype of X and Y, or None for float64 (as read from CSV).

    Returns:
      (X, Y): X = A[0] of shape (n[0], m) = (30, 569), the raw features
      (not standardised), and Y of shape (1, 569) with 1 for malignant (212
      examples) and 0 for benign (357).
    """
    return load_dataset(BREAST_CANCER, dtype)


def load_dataset(name: str, dtype: Any = None) -> tuple[jax.Array, jax.Array]:
    """A shipped data set by name, as (X (n[0], m), Y (n[L], m)).

    Raises:
      ValueError: for a name not in `DATASETS`, or a dtype other than None,
        float32 and float64.
    """
    if name not in _FILES:
        raise ValueError(
            f"unknown data set {name!r}; expected one of: {', '.join(DATASETS)}"
        )
    if dtype is not None and np.dtype(dtype) not in DTYPES:
        raise ValueError(
            f"dtype {np.dtype(dtype)} is not supported for X and Y: expected "
            "float32 or float64 (half precision is not supported)"
        )
    resource = resources.files("manual_bp") / "data" / _FILES[name]
    with resources.as_file(resource) as path:
        return load_data(path, dtype)
