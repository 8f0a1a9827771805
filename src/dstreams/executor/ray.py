"""``ray`` and ``ray://host:port``: executors as Ray actors, behind the local backend's protocol.

Ray places and keeps the executors; dstreams keeps everything else. Each executor is one Ray
actor that reserves ``dstreams.executor.cores`` CPUs and starts that many worker processes
(``python -m dstreams.executor.worker``, the very program of ``local[N]``): a core is a process,
never a thread under one GIL. Every worker connects back to the driver over TCP, serves its
block store over TCP (so a reduce task fetches map outputs straight from the process that holds
them, on whichever node) and runs receivers beside its task slot. The driver's side is
:class:`~dstreams.executor.local.LocalBackend`'s: the same connections, reader threads,
heartbeats, unresponsive detection, block tracking and receiver commands. Only where the
processes come from, and how their death is noticed, differ:

* a worker process that dies closes its connection: its executor is lost at once, and a new
  process starts in the same actor, which still holds that core's CPU (no oversubscription,
  its siblings untouched);
* an actor that dies (``ray.kill``, a node removed) takes its processes with it (they are
  started with ``PR_SET_PDEATHSIG``); the driver also asks every actor for a heartbeat and
  declares the executors of one that fails (``RayActorError``, the first error included:
  ``ActorUnavailableError``) lost, then requests a replacement actor.

Settings: ``dstreams.executor.instances`` (actors, default 2) and ``dstreams.executor.cores``
(processes per actor, default 1), with ``spark.`` aliases; ``dstreams.driver.host`` is the
address workers connect to (default: this node's Ray address). ``ray`` attaches to the cluster
of ``RAY_ADDRESS`` or a running local one (``address="auto"``), and starts a private local one
(loopback only, no dashboard, a small object store) when there is none. ``ray://`` uses Ray
Client. Ray is imported only here, when a ``ray`` master is used (``pip install 'dstreams[ray]'``).
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Listener
from typing import Any

from dstreams.conf import Conf
from dstreams.executor.local import START_TIMEOUT, LocalBackend, _Worker

__all__ = ["RayBackend", "start_cluster", "start_local_ray"]

log = logging.getLogger("dstreams.executor")

#: the address Ray Client and a started cluster use on this machine
LOOPBACK = "127.0.0.1"


def _import_ray() -> Any:
    # read by Ray when it is imported: without it, a node started on loopback is looked for
    # at the machine's other address as well, and ray.init(address=...) hangs
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ImportError(
            "master 'ray' needs Ray: pip install 'dstreams[ray]' (or pip install ray)"
        ) from None
    return ray


def start_local_ray(num_cpus: int | None = None, temp_dir: str | None = None) -> Any:
    """Start a private single-node Ray on loopback (no dashboard, 80 MB object store)."""
    ray = _import_ray()
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        _temp_dir=temp_dir or tempfile.mkdtemp(prefix="dstreams-ray-"),
        _node_ip_address=LOOPBACK,
        configure_logging=False,
        log_to_driver=False,
        _system_config={"health_check_period_ms": 500, "health_check_failure_threshold": 2},
    )
    return ray


def start_cluster(
    nodes: int, temp_dir: str, cpus_per_node: int = 1, client_port: int | None = None
) -> Any:
    """A Ray cluster of ``nodes`` nodes simulated on this machine, connected; the Cluster.

    For tests and benchmarks (``ray.cluster_utils.Cluster``): loopback only, no dashboard, a
    small object store per node, a private temp directory, fast health checks; with
    ``client_port``, a Ray Client server on the head (``ray://127.0.0.1:<client_port>``).
    """
    ray = _import_ray()
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)  # Cluster notes its address there
    node: dict[str, Any] = {
        "node_ip_address": LOOPBACK,
        "object_store_memory": 80 * 2**20,
        "num_cpus": cpus_per_node,
    }
    cluster = Cluster(
        initialize_head=True,
        head_node_args=dict(
            node,
            include_dashboard=False,
            temp_dir=temp_dir,
            _system_config={"health_check_period_ms": 500, "health_check_failure_threshold": 2},
            **({"ray_client_server_port": client_port} if client_port else {}),
        ),
    )
    for _ in range(nodes - 1):
        cluster.add_node(**node)
    cluster.dstreams_node_args = node  # type: ignore[attr-defined]  # to add a like node later
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    return cluster


def _connect(master: str) -> tuple[Any, bool]:
    """Attach to (or start) the cluster ``master`` names; True when this call started it."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    m = master.strip()
    if m.startswith("ray://"):
        ray.init(address=m, log_to_driver=False)
        return ray, False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return ray, False
    try:
        ray.init(address="auto", log_to_driver=False)
        return ray, False
    except (ConnectionError, RuntimeError):
        return start_local_ray(), True


class _ExecutorActor:
    """One executor: the worker processes of its cores (the body of a Ray actor)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes] | None] = []

    def _popen(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = dict(env, DSTREAMS_BLOCK_HOST=_node_ip(), DSTREAMS_DIE_WITH_PARENT="1")
        return subprocess.Popen([sys.executable, *argv], env=env, stdin=subprocess.DEVNULL)

    def start(self, argvs: list[list[str]], envs: list[dict[str, str]]) -> list[int]:
        started = [self._popen(argv, env) for argv, env in zip(argvs, envs)]
        self.procs = list(started)
        return [p.pid for p in started]

    def respawn(self, index: int, argv: list[str], env: dict[str, str]) -> list[int]:
        """Start core ``index``'s process again (the old one is killed and reaped first)."""
        old = self.procs[index]
        if old is not None:
            old.kill()
            old.wait()
        new = self._popen(argv, env)
        self.procs[index] = new
        return [new.pid]

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def ping(self) -> list[tuple[int, int | None]]:
        """Each core's process: (pid, exit code or None while it runs)."""
        return [(p.pid, p.poll()) if p is not None else (0, None) for p in self.procs]

    def kill(self, index: int) -> None:
        p = self.procs[index]
        if p is not None:
            p.kill()

    def stop(self, timeout: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def _node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())


class _RemoteProcess:
    """A worker process inside an actor, seen through ``Popen``'s interface."""

    def __init__(self, actor: Any, index: int, pid: int) -> None:
        self.actor, self.index, self.pid = actor, index, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode  # kept current by the backend's actor monitor

    def kill(self) -> None:
        try:
            self.actor.kill.remote(self.index)
        except Exception:
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class RayBackend(LocalBackend):
    """Executors as Ray actors; see the module docstring."""

    def __init__(self, master: str, conf: Conf, scratch_dir: str | None = None) -> None:
        self._ray, self._started_ray = _connect(master)
        ray = self._ray
        self._instances = conf.get_int("dstreams.executor.instances") or 2
        self._cores = conf.get_int("dstreams.executor.cores") or 1
        if self._instances < 1 or self._cores < 1:
            raise ValueError(
                f"dstreams.executor.instances={self._instances} and dstreams.executor.cores="
                f"{self._cores} must both be at least 1"
            )
        self._host = conf.get_str("dstreams.driver.host") or (
            LOOPBACK if self._started_ray else str(ray.util.get_node_ip_address())
        )
        self._actor_cls = ray.remote(num_cpus=self._cores, max_restarts=0)(_ExecutorActor)
        self._actors: dict[int, tuple[Any, list[str]]] = {}  # actor number -> (handle, eids)
        self._actor_ids = itertools.count()
        super().__init__(self._instances * self._cores, conf, scratch_dir)

    # -- LocalBackend's hooks -------------------------------------------------------------------
    def _make_listener(self) -> Listener:
        return Listener((self._host, 0), "AF_INET", 128, self._authkey)

    def _spawn(self) -> None:
        """Start one more process while fewer are alive than wanted (the lock is held).

        Called once per process wanted at start, after each loss and for each one requested.
        A free core of a live actor (its process died or was removed) gets a new process in
        that actor, which still holds the core's CPU; only when no actor has one is a new
        actor of ``dstreams.executor.cores`` processes requested.
        """
        alive = sum(1 for w in self._workers.values() if w.alive)
        if alive >= self._target:
            return
        for number, (actor, eids) in self._actors.items():
            for index, old in enumerate(eids):
                if old not in self._workers:
                    self._respawn(number, actor, eids, index)
                    return
        self._start_actor()

    def request_executors(self, n: int) -> bool:
        """Add ``n`` executors: ``n`` more actors of ``dstreams.executor.cores`` each."""
        return super().request_executors(n * self._cores)

    def _argv_env(self, eid: str) -> tuple[list[str], dict[str, str]]:
        host, port = self._listener.address
        return ["-m", "dstreams.executor.worker", f"tcp://{host}:{port}", eid], self._worker_env(
            eid
        )

    def _start_actor(self) -> None:
        """Request one actor; its processes register when they connect (never blocks)."""
        number = next(self._actor_ids)
        eids = [str(next(self._ids)) for _ in range(self._cores)]
        argvs, envs = zip(*(self._argv_env(e) for e in eids))
        actor = self._actor_cls.remote()
        self._actors[number] = (actor, eids)
        for i, eid in enumerate(eids):
            self._workers[eid] = _Worker(eid, _RemoteProcess(actor, i, 0))
        self._await(number, actor, list(eids), actor.start.remote(list(argvs), list(envs)))
        if not getattr(self, "_actor_monitor", None):
            self._actor_monitor = threading.Thread(
                target=self._watch_actors, name="dstreams-ray-monitor", daemon=True
            )
            self._actor_monitor.start()

    def _respawn(self, number: int, actor: Any, eids: list[str], index: int) -> None:
        """A new process (a new executor id) for core ``index`` of a live actor."""
        eid = str(next(self._ids))
        eids[index] = eid
        self._workers[eid] = _Worker(eid, _RemoteProcess(actor, index, 0))
        self._await(number, actor, [eid], actor.respawn.remote(index, *self._argv_env(eid)))

    def _await(self, number: int, actor: Any, eids: list[str], started: Any) -> None:
        threading.Thread(
            target=self._await_start,
            args=(number, actor, eids, started),
            name=f"dstreams-ray-start-{number}",
            daemon=True,
        ).start()

    def _await_start(self, number: int, actor: Any, eids: list[str], started: Any) -> None:
        """Note the processes' pids; an actor that cannot start them is replaced later."""
        try:
            pids = self._ray.get(started, timeout=START_TIMEOUT)
        except Exception as e:
            log.warning("executor actor %d did not start a process (%s); asking again", number, e)
            with self._lock:
                self._actors.pop(number, None)
                for eid in eids:  # never registered: no executor to report lost
                    w = self._workers.pop(eid, None)
                    if w is not None:
                        w.alive = False
            self._actor_failed(number, actor, "its actor failed")
            time.sleep(1.0)
            with self._lock:
                for _ in eids:
                    if not self._stopping:
                        self._spawn()
            return
        for eid, pid in zip(eids, pids):
            w = self._workers.get(eid)
            if w is not None:
                w.proc.pid = pid

    def _actor_failed(self, number: int, actor: Any, reason: str) -> None:
        """Forget actor ``number`` and lose every process it still runs."""
        with self._lock:
            entry = self._actors.pop(number, None)
        for eid in entry[1] if entry else []:
            w = self._workers.get(eid)
            if w is not None and w.alive:
                w.proc.returncode = -9
                self._lost(w, reason)
        try:
            self._ray.kill(actor)
        except Exception:
            pass

    def _watch_actors(self) -> None:
        """Ask every actor how its processes are; an actor that fails loses its executors."""
        ray = self._ray
        from ray.exceptions import GetTimeoutError, RayActorError

        while not self._stopping:
            time.sleep(self._heartbeat)
            for number, (actor, eids) in list(self._actors.items()):
                try:
                    slots = ray.get(actor.ping.remote(), timeout=max(1.0, 3 * self._heartbeat))
                except GetTimeoutError:
                    continue  # slow, not dead: the heartbeats decide unresponsiveness
                except RayActorError as e:
                    if self._stopping:
                        return
                    log.warning("executor actor %d failed: %s", number, type(e).__name__)
                    self._actor_failed(number, actor, f"its Ray actor failed ({type(e).__name__})")
                    continue
                except Exception:
                    continue
                for eid, (pid, code) in zip(list(eids), slots):
                    w = self._workers.get(eid)
                    # the pid tells a dead process from the newer one started in its core
                    if w is not None and code is not None and w.alive and w.proc.pid == pid:
                        w.proc.returncode = code
                        self._lost(w, f"its process exited with code {code}")

    def _lost(self, w: _Worker, reason: str) -> None:
        with self._lock:
            if not w.alive:
                return
        # the process may still run in an actor on a node that stopped answering: close its
        # connection so it exits, and have its actor kill it
        w.proc.kill()
        super()._lost(w, reason)
        # an actor left with no process (each one removed, none wanted again) is let go
        with self._lock:
            idle = [
                (n, a)
                for n, (a, eids) in self._actors.items()
                if not any(e in self._workers for e in eids)
            ]
            for n, _ in idle:
                self._actors.pop(n, None)
        for _, actor in idle:
            try:
                self._ray.kill(actor)
            except Exception:
                pass

    def worker_pids(self) -> dict[str, int]:
        return {eid: w.proc.pid for eid, w in self._workers.items() if w.alive}

    def actor_of(self, executor_id: str) -> Any:
        """The actor handle that runs ``executor_id`` (tests kill it)."""
        for actor, eids in self._actors.values():
            if executor_id in eids:
                return actor
        return None

    def stop(self) -> None:
        actors = [a for a, _ in self._actors.values()]
        super().stop()
        for actor in actors:
            try:
                self._ray.kill(actor)
            except Exception:
                pass
        self._actors.clear()
        if self._started_ray:
            self._ray.shutdown()
