"""Serialization: cloudpickle for code, pickle protocol 5 for data, always in batches.

Functions (closures, lambdas, classes defined in ``__main__``) go through :class:`CodePickler`,
a cloudpickle pickler that keeps each function's source file name (so a remote traceback shows
the user's file and line, not ``<dynamic-code>``) and can replace chosen objects by references
(``persistent_id``), which is how a stage's lineage ships flat (``core/shipping.py``). Plain data
goes through the standard pickle, which is several times faster, and falls back to cloudpickle
only for objects pickle refuses (for example instances of classes defined in ``__main__``).
Records are never serialized one at a time: a partition, a shuffle bucket or a task result is
pickled as one list.

When code cannot be pickled, :func:`explain_unpicklable` walks the object (a function's closure
cells, globals, defaults, bound ``self``, containers) to name the innermost value that fails,
with the function's file and line.
"""

from __future__ import annotations

import io
import pickle
import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any, ClassVar

import cloudpickle
from cloudpickle import cloudpickle as _cp

from dstreams.errors import SerializationError

__all__ = [
    "dumps",
    "loads",
    "dumps_code",
    "CodePickler",
    "explain_unpicklable",
    "describe_callable",
    "PROTOCOL",
]

PROTOCOL = 5
loads = pickle.loads


def _code_reduce_keeping_filename(code: types.CodeType) -> Any:
    """cloudpickle's code reducer, with the real ``co_filename`` put back.

    cloudpickle replaces it with ``<dynamic-code>`` to make payloads byte-identical wherever a
    function was defined; tracebacks need the real name more than payloads need that property.
    """
    ctor, args = _cp._code_reduce(code)
    args = tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)
    return ctor, args


class CodePickler(cloudpickle.Pickler):
    """A cloudpickle pickler that keeps source file names and supports ``persistent_id``.

    Args:
        file: the output stream.
        refs: optional ``id(obj) -> reference`` table; an object found in it is written as that
            reference (a persistent id) instead of by value. The unpickler must resolve it with
            ``persistent_load``.
    """

    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        {types.CodeType: _code_reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table
    )

    def __init__(self, file: Any, refs: dict[int, Any] | None = None) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._refs = refs or {}

    def persistent_id(self, obj: Any) -> Any:
        if self._refs:
            return self._refs.get(id(obj))
        return None


def dumps(obj: Any) -> bytes:
    """Pickle data; fall back to cloudpickle for objects the standard pickler rejects."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        try:
            return dumps_code(obj, "a record")
        except SerializationError as e:
            raise SerializationError(
                f"could not serialize {_describe(obj)}: {e.__cause__!r}. "
                "Records and results must be picklable."
            ) from e.__cause__


def dumps_code(obj: Any, what: str, refs: dict[int, Any] | None = None) -> bytes:
    """Pickle functions and the objects they carry, naming ``what`` and the culprit on failure."""
    buf = io.BytesIO()
    try:
        CodePickler(buf, refs).dump(obj)
    except Exception as e:
        detail = explain_unpicklable(obj)
        raise SerializationError(
            f"could not serialize {what}: {type(e).__name__}: {e}"
            + (f"; {detail}" if detail else "")
            + ". Functions shipped to workers must be picklable: create locks, sockets, open "
            "files, generators and clients inside the function (or per partition with "
            "mapPartitions) instead of capturing them."
        ) from e
    return buf.getvalue()


# -- naming the unpicklable piece ------------------------------------------------------------


def _picklable(obj: Any) -> bool:
    try:
        CodePickler(io.BytesIO()).dump(obj)
    except Exception:
        return False
    return True


def _where(func: Any) -> str:
    code = getattr(func, "__code__", None)
    name = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
    if code is None:
        return f"`{name}`"
    return f"`{name}` ({code.co_filename}:{code.co_firstlineno})"


def _parts(obj: Any) -> list[tuple[str, Any]]:
    """The named pieces an object is pickled from, for the search below."""
    if isinstance(obj, types.FunctionType):
        out: list[tuple[str, Any]] = []
        code = obj.__code__
        for name, cell in zip(code.co_freevars, obj.__closure__ or ()):
            try:
                out.append((f"captured variable `{name}`", cell.cell_contents))
            except ValueError:
                continue
        globs = obj.__globals__
        for name in code.co_names:
            if name in globs and not isinstance(globs[name], types.ModuleType):
                out.append((f"global `{name}`", globs[name]))
        for i, d in enumerate(obj.__defaults__ or ()):
            out.append((f"default argument {i}", d))
        return out
    if isinstance(obj, types.MethodType):
        return [("bound object `self`", obj.__self__), ("method", obj.__func__)]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"item {i}", v) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return [(f"key {k!r}", v) for k, v in obj.items()]
    if not hasattr(obj, "__dict__"):
        return []
    try:
        state = obj.__getstate__()  # what pickle pickles, not the raw attributes
    except Exception:
        return []
    if isinstance(state, dict):
        return [(f"attribute `{k}`", v) for k, v in state.items()]
    return []


def explain_unpicklable(obj: Any, limit: int = 400) -> str:
    """Describe the innermost unpicklable value inside ``obj`` ("" if none is found).

    Example: ``function `parse` (job.py:12) -> captured variable `lock`: a _thread.lock``.
    """
    path: list[str] = []
    seen: set[int] = set()
    current = obj
    budget = [limit]

    def label(o: Any) -> str:
        if isinstance(o, (types.FunctionType, types.MethodType)):
            return f"function {_where(o)}"
        return f"a {type(o).__module__}.{type(o).__qualname__}"

    while budget[0] > 0:
        budget[0] -= 1
        seen.add(id(current))
        culprit = None
        for name, part in _parts(current):
            if id(part) in seen or isinstance(part, (type, types.ModuleType)):
                continue
            budget[0] -= 1
            if budget[0] <= 0:
                break
            if not _picklable(part):
                culprit = (name, part)
                break
        if culprit is None:
            break
        name, current = culprit
        if isinstance(current, (types.FunctionType, types.MethodType)):
            path.append(f"{name}: {label(current)}")
        else:
            path.append(name)
    if not path:
        return ""
    head = label(obj) if isinstance(obj, (types.FunctionType, types.MethodType)) else ""
    tail = f" is {label(current)}, which cannot be pickled"
    return " -> ".join(([head] if head else []) + path) + tail


def describe_callable(func: Callable[..., Any]) -> str:
    """``name (file:line)`` of a function, for messages."""
    return _where(func)


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."
