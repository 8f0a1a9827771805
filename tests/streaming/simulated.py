"""A simulated executor backend: tasks run in this process and take time on a manual clock.

Each task really runs (an in-process :class:`~dstreams.executor.worker.Worker` decodes and
computes it), then the backend moves the shared :class:`ManualClock` forward by the task's cost:
``fixed_ms`` plus ``per_record_ms`` for every record the task read from received blocks.
Receivers run in this process too (a :class:`ReceiverHost` on the manual clock). Processing
time therefore grows with the records, exactly as the engine measures it (on the streaming
clock), while the test itself never sleeps. Tasks run one at a time, in launch order, on one
executor.

Time moves through ``advance(ms)``, the test's stepper (5 ms at a time, waiting after each step
until the data source has caught up), so records keep arriving while a task "runs", as they
would on a real clock.

Register it with :func:`install` and create ``Context("simulated", ...)``.
"""

from __future__ import annotations

import pickle
import queue
import threading
from typing import Any

from dstreams.conf import Conf
from dstreams.executor.base import ExecutorBackend
from dstreams.executor.worker import Worker
from dstreams.runtime import BackendSpec, register_backend, unregister_backend
from dstreams.scheduler.dag import ExecutorAdded, TaskFailed, TaskFinished
from dstreams.scheduler.events import ReceiverMessage
from dstreams.scheduler.task import TaskSpec
from dstreams.streaming.clock import ManualClock
from dstreams.streaming.receiver_host import ReceiverHost

__all__ = ["SimulatedBackend", "install", "uninstall"]


class SimulatedBackend(ExecutorBackend):
    def __init__(
        self,
        clock: ManualClock,
        per_record_ms: float,
        fixed_ms: float,
        advance: Any = None,
    ) -> None:
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.receiver_events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.clock, self.per_record_ms, self.fixed_ms = clock, per_record_ms, fixed_ms
        self.extra, self.requests, self.removals = [], [], []
        self.advance = advance or clock.advance
        self._worker = Worker("sim-0", None, b"simulated")  # type: ignore[arg-type]
        # receivers run in this process, on the shared manual clock, unpickled
        self._host = ReceiverHost(
            "sim-0",
            self._worker.server.address,
            self._worker.store,
            lambda: self._worker.client,
            lambda msg: self.receiver_events.put(ReceiverMessage("sim-0", *msg[1:])),
            clock,
        )
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._stopped = False
        self.busy_ms = 0.0
        threading.Thread(target=self._run, name="simulated-executor", daemon=True).start()
        added = ExecutorAdded("sim-0", self._worker.server.address, 2)
        self.events.put(added)
        self.receiver_events.put(added)

    def cost_ms(self, spec: TaskSpec, records: int) -> float:
        return self.fixed_ms + self.per_record_ms * records

    def _run(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            spec, payload = item
            before = _input_records_read()
            kind, body = self._worker.run_task(spec, payload)
            cost = self.cost_ms(spec, _input_records_read() - before)
            self.busy_ms += cost
            self.advance(round(cost))  # the task "took" this long
            self.events.put(TaskFinished(body) if kind == "done" else TaskFailed(body))

    def launch(self, executor_id: str, spec: TaskSpec, payload: bytes) -> None:
        # the payload goes with every task: the worker keeps what it decoded by payload id
        self._inbox.put((pickle.loads(pickle.dumps(spec)), payload))

    def kill_task(self, executor_id: str, task_id: int, only_if_queued: bool = False) -> None:
        pass  # tasks here always run to their end

    def remove_blocks(self, kind: str, ident: int) -> None:
        self._worker.store.remove_matching(kind, ident)

    def forget_payloads(self, payload_ids: list[int]) -> None:
        for pid in payload_ids:
            self._worker._payloads.pop(pid, None)

    def kill_executor(self, executor_id: str) -> None:
        raise NotImplementedError("the simulated executor cannot be lost")

    #: executors asked for with ``request_executors``: counted and listed, never given tasks
    #: (the scheduler hears of no ``ExecutorAdded`` for them), so scaling decisions can be
    #: tested while every task still runs on ``sim-0``
    extra: list[str]
    requests: list[int]
    removals: list[list[str]]

    def executor_ids(self) -> list[str]:
        return ["sim-0", *self.extra]

    def request_executors(self, n: int) -> bool:
        self.requests.append(n)
        start = len(self.requests) * 100
        self.extra += [f"sim-{start + i}" for i in range(n)]
        return True

    def remove_executors(self, executor_ids: list[str]) -> bool:
        self.removals.append(list(executor_ids))
        self.extra = [e for e in self.extra if e not in executor_ids]
        return True

    def executor_addresses(self) -> dict[str, Any]:
        return {"sim-0": self._worker.server.address}

    def start_receiver(
        self, executor_id: str, stream_id: int, receiver: Any, settings: Any
    ) -> None:
        self._host.handle(stream_id, ("start", settings, receiver))

    def receiver_command(self, executor_id: str, stream_id: int, command: tuple[Any, ...]) -> None:
        self._host.handle(stream_id, command)

    def remove_input_blocks(self, stream_id: int, upto: tuple[int, int]) -> None:
        self._worker.store.remove_input_upto(stream_id, upto)

    def stop(self) -> None:
        self._host.stop_all()
        self._inbox.put(None)


#: the clock and costs the next ``Context("simulated")`` gets
SETTINGS: dict[str, Any] = {}


def _factory(master: str, conf: Conf, scratch: str) -> tuple[Any, int]:
    backend = SimulatedBackend(
        SETTINGS["clock"],
        SETTINGS.get("per_record_ms", 1.0),
        SETTINGS.get("fixed_ms", 1.0),
        SETTINGS.get("advance"),
    )
    SETTINGS["backend"] = backend
    return backend, 1


def install(clock: ManualClock, per_record_ms: float, fixed_ms: float, advance: Any = None) -> None:
    SETTINGS.update(clock=clock, per_record_ms=per_record_ms, fixed_ms=fixed_ms, advance=advance)
    register_backend(BackendSpec("simulated", lambda m: m == "simulated", _factory, "simulated"))


def uninstall() -> None:
    unregister_backend("simulated")
    SETTINGS.clear()


_READ = [0]


def _input_records_read() -> int:
    return _READ[0]


def _count_reads() -> None:
    """Count the records tasks read from received blocks (the cost model's input)."""
    from dstreams.executor import worker

    original = worker.WorkerTaskContext.read_input_block

    def counted(self: Any, info: Any) -> Any:
        _READ[0] += info.num_records
        return original(self, info)

    if not getattr(worker.WorkerTaskContext.read_input_block, "_counted", False):
        counted._counted = True  # type: ignore[attr-defined]
        worker.WorkerTaskContext.read_input_block = counted  # type: ignore[method-assign]


_count_reads()
