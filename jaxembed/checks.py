"""Argument checks shared by the library: errors that name the Python parameter and the fix.

Library errors speak in Python terms (``batch_size``, ``resume=True``); an error about specific
parameters carries their names in ``err.parameters``, and the command line (`jaxembed.cli`)
renames them to its flags (``--batch-size``, ``--resume``), so each message is written once.

    >>> positive_int("batch_size", 0)
    Traceback (most recent call last):
    ...
    jaxembed.checks.ParameterError: batch_size must be a positive integer; got 0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

E = TypeVar("E", bound=BaseException)


class ParameterError(ValueError):
    """A bad argument value; `parameters` names the Python parameters the message mentions."""

    def __init__(self, message: str, *parameters: str):
        super().__init__(message)
        self.parameters = parameters


def naming(err: E, *parameters: str) -> E:
    """Marks an error of another type (FileExistsError, ...) as mentioning `parameters`."""
    err.parameters = parameters  # type: ignore[attr-defined]
    return err


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def positive_int(name: str, value: Any) -> int:
    """`value` as an int if it is an integer >= 1, else a ParameterError naming `name`."""
    if not _is_int(value) or value < 1:
        raise ParameterError(f"{name} must be a positive integer; got {value!r}", name)
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    """`value` as an int if it is an integer >= 0, else a ParameterError naming `name`."""
    if not _is_int(value) or value < 0:
        raise ParameterError(f"{name} must be an integer >= 0; got {value!r}", name)
    return int(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    """None, or `value` checked by `positive_int`."""
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise ParameterError(f"{name} must be a positive integer or None; got {value!r}", name)
    return int(value)


def one_of(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """`value` if it is one of `allowed`, else a ParameterError listing them."""
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {tuple(allowed)}; got {value!r}", name)
    return value


def check_ids(ids: Any, vocab_size: int) -> np.ndarray:
    """Returns concrete integer IDs as an int64 numpy array, refusing bad ones.

    Args:
      ids: integers of any shape (list, numpy or concrete JAX array).
      vocab_size: V; valid IDs are [0, V).

    Returns:
      The IDs, int64. Float or bool IDs raise TypeError; IDs outside [0, V) raise ValueError naming
      the ID and its position (an index tuple for arrays of 2 or more dimensions).

    Example:
      >>> check_ids([2, 3, 5, 1], 6).tolist()
      [2, 3, 5, 1]
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        return ids.astype(np.int64)
    if ids.dtype.kind not in "iu":
        raise TypeError(
            f"ids must be integers; got dtype {ids.dtype} - cast them first, "
            "e.g. np.asarray(ids).astype(np.int32) (round floats if needed)"
        )
    flat = ids.reshape(-1)
    bad = np.flatnonzero((flat < 0) | (flat >= vocab_size))
    if bad.size:
        flat_position = int(bad[0])
        position = flat_position
        if ids.ndim > 1:
            position = tuple(int(p) for p in np.unravel_index(flat_position, ids.shape))
        raise ValueError(
            f"ids must be in [0, {vocab_size}); got {int(flat[flat_position])} at position {position} "
            f"- the vocabulary has {vocab_size} tokens"
        )
    return ids.astype(np.int64)
