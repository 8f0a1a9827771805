"""Serialization: cloudpickle for code, pickle protocol 5 for data, always in batches.

Functions (closures, lambdas, classes defined in ``__main__``) go through cloudpickle; plain data
goes through the standard pickle, which is several times faster, and falls back to cloudpickle
only for objects pickle refuses (for example instances of classes defined in ``__main__``).
Records are never serialized one at a time: a partition, a shuffle bucket or a task result is
pickled as one list.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from dstreams.errors import SerializationError

__all__ = ["dumps", "loads", "dumps_code", "PROTOCOL"]

PROTOCOL = 5
loads = pickle.loads


def dumps(obj: Any) -> bytes:
    """Pickle data; fall back to cloudpickle for objects the standard pickler rejects."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        try:
            return cloudpickle.dumps(obj, PROTOCOL)
        except Exception as e:
            raise SerializationError(
                f"could not serialize {_describe(obj)}: {type(e).__name__}: {e}. "
                "Records and results must be picklable."
            ) from e


def dumps_code(obj: Any, what: str) -> bytes:
    """Pickle functions and the RDD lineage that carries them, naming ``what`` on failure."""
    try:
        return cloudpickle.dumps(obj, PROTOCOL)
    except Exception as e:
        raise SerializationError(
            f"could not serialize {what}: {type(e).__name__}: {e}. Functions shipped to workers "
            "must be picklable: do not capture locks, sockets, open files, generators or the "
            "Context in them; create such objects inside the function instead."
        ) from e


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."
