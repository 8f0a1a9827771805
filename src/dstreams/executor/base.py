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
    def stop(self) -> None:
        """Stop every executor and release resources."""
