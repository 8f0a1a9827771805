"""DStreamGraph: the input and output streams of one StreamingContext.

It owns the graph-wide operations the job generator drives: ``start`` (set the
zero time, propagate remember durations, validate, start inputs),
``generate_jobs(time)`` (one job per output stream that has an RDD at that
time), ``clear_metadata(time)`` (forget old RDDs) and the list of RDDs marked
for checkpointing in each batch.  Every method holds the graph lock, so user
threads calling ``DStream.slice`` never race the generator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dstreams.streaming.dstream import DStream
    from dstreams.streaming.operators.input import InputDStream
    from dstreams.streaming.operators.output import ForEachDStream

__all__ = ["DStreamGraph", "GeneratedJob"]


class GeneratedJob:
    """One output operation's work for one batch."""

    __slots__ = ("func", "name", "output_id", "time_ms")

    def __init__(self, time_ms: int, output_id: int, name: str, func: Callable[[], Any]) -> None:
        self.time_ms, self.output_id, self.name, self.func = time_ms, output_id, name, func

    def __repr__(self) -> str:
        return f"GeneratedJob(time={self.time_ms}, output={self.output_id}, name={self.name!r})"


class DStreamGraph:
    """Inputs, outputs and the graph-wide time bookkeeping of one StreamingContext."""

    def __init__(self, batch_ms: int) -> None:
        self.batch_ms = batch_ms
        self.inputs: list[InputDStream] = []
        self.outputs: list[ForEachDStream] = []
        self.remember_ms: int | None = None
        self.zero_ms: int | None = None
        self._lock = threading.RLock()
        self._checkpoint_marks: dict[int, list[Any]] = {}
        self._stream_ids = 0

    def next_stream_id(self) -> int:
        """A new DStream's id: its creation order, the same in every run of the program."""
        self._stream_ids += 1
        return self._stream_ids - 1

    def peek_stream_id(self) -> int:
        """The id the next DStream will get (an operator names its output stream by it)."""
        return self._stream_ids

    def addInputStream(self, stream: InputDStream) -> int:
        """Register an input stream; return its id."""
        with self._lock:
            self.inputs.append(stream)
            return len(self.inputs) - 1

    def addOutputStream(self, stream: ForEachDStream) -> None:
        """Register an output stream."""
        with self._lock:
            self.outputs.append(stream)

    def remember(self, duration_ms: int) -> None:
        """Make every stream keep its RDDs for at least ``duration_ms``."""
        self.remember_ms = duration_ms

    def start(self, zero_ms: int) -> None:
        """Initialize every stream at ``zero_ms``, validate, and start the inputs."""
        with self._lock:
            if not self.outputs:
                raise ValueError(
                    "No output operations registered, so nothing to execute; add "
                    "one (pprint, foreachRDD, saveAsTextFiles) before start()"
                )
            self.zero_ms = zero_ms
            for out in self.outputs:
                out._initialize(zero_ms)
            for out in self.outputs:
                out._remember(self.remember_ms)
            for out in self.outputs:
                out._validate_at_start()
            for inp in self.inputs:
                inp._start()

    def restart(self) -> None:
        """Start a graph read back from a checkpoint: its zero time and state are restored."""
        with self._lock:
            for out in self.outputs:
                out._validate_at_start()
            for inp in self.inputs:
                inp._start()

    def generate_rdds(self, time_ms: int) -> None:
        """Build (not run) every output's RDD at ``time_ms``: recovery rebuilds old batches in
        time order, so that each state RDD finds its predecessor memoised (no recursion)."""
        with self._lock:
            for out in self.outputs:
                out.parent._get_or_compute(time_ms)

    def stop(self) -> None:
        """Stop the inputs and forget every generated RDD."""
        with self._lock:
            for inp in self.inputs:
                inp._stop()
            for stream in self._all_streams():
                stream._generated.clear()
            self._checkpoint_marks.clear()

    def generate_jobs(self, time_ms: int) -> list[GeneratedJob]:
        """Return the jobs of batch ``time_ms``: one per output with an RDD then."""
        with self._lock:
            jobs = []
            for i, out in enumerate(self.outputs):
                func = out._generate_job(time_ms)
                if func is not None:
                    jobs.append(GeneratedJob(time_ms, i, out.name, func))
            return jobs

    def clear_metadata(self, time_ms: int) -> None:
        """Let every stream forget the RDDs it no longer needs after batch ``time_ms``."""
        with self._lock:
            for out in self.outputs:
                out._clear_metadata(time_ms)

    # -- metadata checkpoints ---------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _checkpoint_marks={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def attach(self, ssc: Any) -> None:
        """Bind a graph read back from a checkpoint (and all its streams) to ``ssc``."""
        for stream in self._all_streams():
            stream._attach(ssc)

    def checkpoint_data(self) -> dict[int, Any]:
        """Each stream's part of a metadata checkpoint, by stream id."""
        with self._lock:
            out = {}
            for stream in self._all_streams():
                data = stream._checkpoint_data()
                if data is not None:
                    out[stream._stream_id] = data
            return out

    def restore_checkpoint(self, data: dict[int, Any]) -> None:
        """Give every stream its part of a metadata checkpoint back."""
        with self._lock:
            for stream in self._all_streams():
                stream._restore_checkpoint(data.get(stream._stream_id))

    def record_checkpoints(self, time_ms: int) -> None:
        """After batch ``time_ms``: every stream notes the RDD checkpoints it wrote."""
        with self._lock:
            for stream in self._all_streams():
                stream._record_checkpoint(time_ms)

    def max_checkpoint_ms(self) -> int:
        """The longest RDD-checkpoint interval of any stream (0 if none checkpoints)."""
        return max((s._checkpoint_ms or 0 for s in self._all_streams()), default=0)

    def _mark_checkpointed(self, time_ms: int, rdd: Any) -> None:
        self._checkpoint_marks.setdefault(time_ms, []).append(rdd)

    def take_checkpoint_marks(self, time_ms: int) -> list[Any]:
        """Return (and forget) the RDDs marked for checkpointing in batch ``time_ms``."""
        with self._lock:
            return self._checkpoint_marks.pop(time_ms, [])

    def state_sizes(self, time_ms: int, runner: Any) -> dict[int, tuple[str, int, int]]:
        """``{stream id: (operation, keys, bytes)}`` of each state stream's RDD at ``time_ms``.

        A state stream is one that must checkpoint (its RDDs chain on each other); the sizes
        are what the tasks that cached its partitions reported (see ``JobRunner.cached_size``).
        """
        out = {}
        with self._lock:
            for stream in self._all_streams():
                if not stream._must_checkpoint:
                    continue
                rdd = stream._generated.get(time_ms)
                if rdd is None:
                    continue
                keys, size, parts = runner.cached_size(rdd._id, rdd.getNumPartitions())
                if parts:
                    out[stream._stream_id] = (stream._op_name(), keys, size)
        return out

    def event_time_report(self, time_ms: int) -> tuple[int, dict[int, float]]:
        """Records event-time windows dropped as late in batch ``time_ms``, and the watermark
        each applied (by stream id). Reads the batch's cached window states (a tiny job)."""
        late, marks = 0, {}
        with self._lock:
            streams = [s for s in self._all_streams() if hasattr(s, "watermarks")]
        for stream in streams:
            rdd = stream._generated.get(time_ms)
            if rdd is None:
                continue
            late += sum(rdd.map(lambda st: st.late).collect())
            marks[stream._stream_id] = stream.watermarks.get(time_ms, float("-inf"))
        return late, marks

    def _all_streams(self) -> list[DStream[Any]]:
        seen: dict[int, DStream[Any]] = {}
        todo: list[DStream[Any]] = [*self.outputs, *self.inputs]
        while todo:
            s = todo.pop()
            if id(s) not in seen:
                seen[id(s)] = s
                todo.extend(s._dependencies)
        return list(seen.values())

    def held_rdd_count(self) -> int:
        """Return how many generated RDDs the streams still hold (for leak tests)."""
        with self._lock:
            return sum(len(s._generated) for s in self._all_streams())
