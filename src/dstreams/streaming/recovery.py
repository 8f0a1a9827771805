"""Driver recovery: writing metadata checkpoints while running, and restarting from one.

:class:`MetadataCheckpointer` is what a StreamingContext with ``ssc.checkpoint(dir)`` uses: at
``start()`` it pickles the DStream graph (a function that cannot be pickled fails ``start()``
here, naming it) and writes it with a first checkpoint; after that the job generator asks it to
write one checkpoint when a batch is generated and one when it completes
(``streaming/checkpoint.py`` has the files).

:func:`recover` is ``StreamingContext.getOrCreate``'s other branch. It reads the newest intact
checkpoint, refuses one written by a different program or an incompatible dstreams, rebuilds the
Context (from the checkpoint's conf, unless one is active) and a StreamingContext around the
checkpointed graph, and gives every stream and the receiver tracker their checkpoint data back.
``start()`` then re-runs, through the ordinary job generator, the batches that were pending when
the driver died, then the batches of the time it was down, each with the plan recorded when it
was generated (or a new one, for down time), before new batches follow. There is one path:
recovered batches are generated, checkpointed and run exactly as live ones.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dstreams.events import CheckpointWritten, now_ms
from dstreams.streaming.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    program_fingerprint,
)

if TYPE_CHECKING:
    from dstreams.streaming.context import StreamingContext

__all__ = ["MetadataCheckpointer", "recover", "UPGRADE_HINT"]

_log = logging.getLogger(__name__)

UPGRADE_HINT = (
    "A checkpoint restarts only the program and the dstreams version that wrote it. To deploy "
    "another: stop the running program gracefully (ssc.stop(stopGraceFully=True)), then start "
    "the new one with a new checkpoint directory; sources resume from their committed offsets "
    "(docs/streaming.md, 'Upgrading a program')"
)


class MetadataCheckpointer:
    """Writes one StreamingContext's metadata checkpoints (see the module docstring)."""

    def __init__(
        self, ssc: StreamingContext, store: CheckpointStore, program: str, graph_file: str = ""
    ) -> None:
        self.ssc, self.store, self.program = ssc, store, program
        self.graph_file = graph_file

    def write_graph(self) -> None:
        """Pickle the graph and write it (once); fails if a function cannot be pickled."""
        from dstreams.serde import dumps_code

        data = dumps_code(self.ssc._graph, "the DStream graph for the metadata checkpoint")
        self.graph_file = self.store.write_graph(data)

    def write(self, time_ms: int, pending: list[int], last_generated: int | None) -> str:
        """Write the checkpoint of batch ``time_ms``; return its path.

        Raises:
            CheckpointWriteError: it could not be written (the message names the file).
        """
        ssc = self.ssc
        sc = ssc._sc
        began = time.perf_counter()
        cp = Checkpoint(
            seq=0,
            time_ms=time_ms,
            version=_version(),
            program=self.program,
            app_name=sc.appName,
            master=sc.master,
            batch_ms=ssc._batch_ms,
            zero_ms=ssc._graph.zero_ms or 0,
            conf=sc.getConf().getAll(),
            graph_file=self.graph_file,
            pending=sorted(pending),
            last_generated_ms=last_generated,
            streams=ssc._graph.checkpoint_data(),
            receivers=ssc._receiver_tracker.checkpoint_data(),
        )
        path = self.store.write(cp)
        took = (time.perf_counter() - began) * 1000.0
        sc._runner.bus.post(CheckpointWritten(now_ms(), time_ms, took, self.store.last_bytes))
        return path


def _version() -> str:
    from dstreams import __version__

    return __version__


def recover(path: str, setup_func: Callable[[], Any]) -> StreamingContext | None:
    """The StreamingContext of the newest intact checkpoint in ``path`` (None if there is none).

    Raises:
        CheckpointError: checkpoints exist but none can be read, or the newest was written by
            another program or an incompatible dstreams version (the message says which and
            how to upgrade).
    """
    store = CheckpointStore(path)
    cp = store.read_latest()
    if cp is None:
        return None
    program = program_fingerprint(setup_func)
    if cp.program and cp.program != program:
        raise CheckpointError(
            f"the checkpoint in {path} was written by a different program: its setup function "
            f"is {cp.program}, this program's is {program} (the code that builds the streams "
            f"changed). {UPGRADE_HINT}"
        )
    mine = _version()
    if cp.version.split(".")[:2] != mine.split(".")[:2]:
        raise CheckpointError(
            f"the checkpoint in {path} was written by dstreams {cp.version}; this is dstreams "
            f"{mine}. {UPGRADE_HINT}"
        )
    try:
        graph = pickle.loads(store.read_graph(cp.graph_file))
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"the streaming graph of the checkpoint in {path} cannot be loaded: "
            f"{type(e).__name__}: {e} (the code it refers to must be importable). {UPGRADE_HINT}"
        ) from e
    sc = _context_for(cp)
    from dstreams.streaming.context import StreamingContext

    ssc = StreamingContext(sc, cp.batch_ms / 1000.0)
    ssc._adopt(graph, cp, store, program)
    _log.warning(
        "recovering from checkpoint %d of batch %d ms in %s: %d batches were pending",
        cp.seq,
        cp.time_ms,
        path,
        len(cp.pending),
    )
    return ssc


def _context_for(cp: Checkpoint) -> Any:
    """The active Context, or a new one from the checkpoint's conf (overridden by ``submit``)."""
    from dstreams.conf import Conf
    from dstreams.core.context import Context

    with Context._lock:
        active = Context._active
    if active is not None:
        return active
    conf = Conf(loadDefaults=False).setAll(cp.conf)
    for k, v in Conf().getAll():  # what this launch says (dstreams submit, environment) wins
        conf.set(k, v)
    _log.info("recreating the Context with %s", conf.redacted())
    return Context(conf=conf)
