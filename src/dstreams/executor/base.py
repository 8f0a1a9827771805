"""The executor backend protocol: where tasks run, behind one interface.

The driver's job runner talks to executors only through :class:`ExecutorBackend`: it launches
tasks and asks for block removal; the backend reports back through ``events`` (a queue of
``scheduler.dag`` events: ``ExecutorAdded``, ``ExecutorLost``, ``TaskFinished``, ``TaskFailed``).

Contract, which ``tests/executor/test_contract.py`` checks for every backend:

* ``launch`` never blocks on the task; exactly one ``TaskFinished`` or ``TaskFailed`` follows
  for each launched task, unless its executor is lost first (then ``ExecutorLost`` is posted
  and the task's outcome is never reported).
* A stage payload is sent with the first task that runs it (``spec.payload_id``) on each
  executor only.
* A lost executor is replaced; the replacement announces itself with ``ExecutorAdded``
  under a new executor id.
* Blocks written by a task (shuffle outputs, cached partitions) stay on its executor until
  ``remove_blocks`` or the executor's death, and other executors can fetch them.
* ``kill_task`` interrupts a task that is running or queued on its executor; the task answers
  ``TaskFailed`` with ``killed=True`` (or its normal outcome if it finished first). With
  ``only_if_queued`` it withdraws a task that has not started and leaves a running one alone.
* Threading: ``launch``/``kill_task``/``remove_blocks``/``forget_payloads``/``kill_executor``
  may be called from
  the runner thread only; ``events`` is filled from backend threads.

Receivers (``streaming/receiver_host.py`` runs them on the executor):

* ``start_receiver`` ships a receiver and its settings to an executor; it runs beside
  the executor's task slots. ``receiver_command`` sends it ``stop``, ``rate``, ``flush``,
  ``peer`` and ``ack`` commands, in order.
* What receivers say comes back as ``ReceiverMessage`` events on ``receiver_events``, in the
  order each receiver sent them; ``ExecutorAdded``, ``ExecutorLost``, ``ExecutorUnresponsive``
  and ``ExecutorResponsive`` are posted there too.
* ``remove_input_blocks`` drops a stream's received blocks up to a sequence number from every
  executor. Executors' block servers also accept blocks from peers (replicas).
"""

from __future__ import annotations

import abc
import queue
from typing import Any

from dstreams.scheduler.task import TaskSpec

__all__ = ["ExecutorBackend"]


class ExecutorBackend(abc.ABC):
    """Runs tasks somewhere and reports what happens (see the module docstring)."""

    events: queue.SimpleQueue[Any]
    receiver_events: queue.SimpleQueue[Any]

    @abc.abstractmethod
    def launch(self, executor_id: str, spec: TaskSpec, payload: bytes) -> None:
        """Run ``spec`` on ``executor_id``; ``payload`` is its stage (``core/shipping.py``)."""

    @abc.abstractmethod
    def kill_task(self, executor_id: str, task_id: int, only_if_queued: bool = False) -> None:
        """Stop a running or queued task; it then reports ``TaskFailed`` with ``killed``.

        With ``only_if_queued``, a task that already started is left to finish.
        """

    @abc.abstractmethod
    def remove_blocks(self, kind: str, ident: int) -> None:
        """Drop every block of a shuffle (``"shuffle"``) or a cached RDD (``"rdd"``)."""

    @abc.abstractmethod
    def forget_payloads(self, payload_ids: list[int]) -> None:
        """Let executors drop cached stage payloads (those of a finished job)."""

    @abc.abstractmethod
    def kill_executor(self, executor_id: str) -> None:
        """Kill an executor abruptly (as a crash would); it is then reported lost."""

    @abc.abstractmethod
    def executor_ids(self) -> list[str]:
        """The executors currently alive."""

    @abc.abstractmethod
    def executor_addresses(self) -> dict[str, Any]:
        """Executor id -> block-server address, for the executors alive now."""

    @abc.abstractmethod
    def start_receiver(
        self, executor_id: str, stream_id: int, receiver: Any, settings: Any
    ) -> None:
        """Ship ``receiver`` to ``executor_id`` and run it there (replacing one of that stream).

        Raises:
            SerializationError: the receiver cannot be shipped; the message names it.
        """

    @abc.abstractmethod
    def receiver_command(self, executor_id: str, stream_id: int, command: tuple[Any, ...]) -> None:
        """Send a command to the receiver of ``stream_id`` on ``executor_id``."""

    @abc.abstractmethod
    def remove_input_blocks(self, stream_id: int, upto: tuple[int, int]) -> None:
        """Drop the received blocks of ``stream_id`` up to sequence ``upto`` everywhere."""

    def request_executors(self, n: int) -> bool:
        """Add ``n`` executors while the application runs (they announce ``ExecutorAdded``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot add executors")

    def remove_executors(self, executor_ids: list[str]) -> bool:
        """Stop these executors for good (no replacement); they are reported lost.

        Nothing is handed off: their blocks are recomputed from lineage or read from replicas.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot remove executors")

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop every executor and release resources."""
