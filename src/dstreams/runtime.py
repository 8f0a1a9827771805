"""The composition root: which executor backend a master URL means, and how it is built.

``Context`` describes nothing about where tasks run; it asks :func:`create_backend` for the
backend of its master URL and wires it to the job runner. Backends register a *matcher* and a
*factory*:

* ``local``, ``local[N]``, ``local[*]``: N worker processes on this machine (the default);
* ``ray``, ``ray://host:port``: executors as Ray actors (``executor/ray.py``), when installed.

Tests and plug-ins may add their own with :func:`register_backend` (the simulated backend of the
backpressure tests is one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dstreams.conf import Conf, parse_master

__all__ = ["BackendSpec", "create_backend", "register_backend", "start_observers"]

#: (master URL, conf, scratch directory) -> the started backend and its default parallelism
BackendFactory = Callable[[str, Conf, str], tuple[Any, int]]


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: ``matches(master)`` says whether ``factory`` serves it."""

    name: str
    matches: Callable[[str], bool]
    factory: BackendFactory
    example: str


def _local(master: str, conf: Conf, scratch: str) -> tuple[Any, int]:
    from dstreams.executor.local import LocalBackend

    n = parse_master(master)
    return LocalBackend(n, conf, scratch), n


def _ray(master: str, conf: Conf, scratch: str) -> tuple[Any, int]:
    from dstreams.executor.ray import RayBackend

    backend = RayBackend(master, conf, scratch)
    return backend, backend.num_workers


def _is_ray(master: str) -> bool:
    m = master.strip()
    return m == "ray" or m.startswith("ray://")


_BACKENDS: list[BackendSpec] = [
    BackendSpec("ray", _is_ray, _ray, "ray"),
    BackendSpec("local", lambda m: m.strip().startswith("local"), _local, "local[N]"),
]


def register_backend(spec: BackendSpec) -> None:
    """Add a backend; it is tried before the ones registered earlier."""
    _BACKENDS.insert(0, spec)


def unregister_backend(name: str) -> None:
    """Remove the backends registered under ``name``."""
    _BACKENDS[:] = [b for b in _BACKENDS if b.name != name]


def create_backend(master: str, conf: Conf, scratch: str) -> tuple[Any, int]:
    """Start the backend for ``master``; returns it and its default parallelism.

    Raises:
        ValueError: no backend serves ``master``; the message lists the supported forms.
    """
    for spec in _BACKENDS:
        if spec.matches(master):
            return spec.factory(master, conf, scratch)
    forms = ", ".join(f"'{b.example}'" for b in _BACKENDS)
    raise ValueError(f"master {master!r} is not supported; use one of {forms}")


def validate_master(master: str) -> None:
    """Fail early on a master no backend serves (or a malformed ``local[...]``)."""
    for spec in _BACKENDS:
        if spec.matches(master):
            if spec.name == "local":
                parse_master(master)
            return
    forms = ", ".join(f"'{b.example}'" for b in _BACKENDS)
    raise ValueError(f"master {master!r} is not supported; use one of {forms}")


def start_observers(sc: Any, bus: Any) -> Any:
    """Start Context ``sc``'s UI, event log and status store on ``bus`` (``dstreams/ui``)."""
    from dstreams.ui import start

    return start(sc, bus)


def validate_observers(conf: Conf) -> None:
    """Fail early on UI settings that cannot work (a public bind without a token)."""
    from dstreams.ui import validate

    validate(conf)
