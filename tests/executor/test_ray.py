"""The Ray backend on a 3-node cluster simulated on this machine (``ray.cluster_utils``).

The contract suite (``test_contract.py``) runs on Ray too; here, whole programs:

* a Context on ``ray`` runs jobs on executors that are Ray actors, one process per core;
* a stateful stream (``updateStateByKey`` and an inverse window) stays exact, batch by batch,
  when an executor actor is killed and when a whole node is removed mid-stage: only that
  node's blocks are lost, they are recomputed from lineage on the survivors, and a
  replacement actor is requested;
* no Ray process of the session listens on anything but loopback.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from operator import add, sub
from typing import Any

import pytest

from dstreams import Conf, Context
from dstreams.testing import manual_context, run_batches

pytestmark = pytest.mark.usefixtures("ray_session")

BATCH = 0.1
VOCAB = [f"w{i}" for i in range(30)]


@pytest.fixture
def ray_sc(no_context) -> Any:
    conf = (
        Conf(loadDefaults=False)
        .set("spark.executor.instances", "2")  # the spark. alias
        .set("dstreams.streaming.clock", "manual")
    )
    sc = Context("ray", "ray-tests", conf=conf)
    yield sc
    sc.stop()


def test_a_context_on_ray_runs_jobs_on_actor_executors(ray_sc):
    import ray

    backend = ray_sc._backend
    assert type(backend).__name__ == "RayBackend"
    assert sorted(backend.executor_ids()) == ["0", "1"] and ray_sc.defaultParallelism == 2
    nodes = {ray.get(backend.actor_of(e).node_id.remote()) for e in backend.executor_ids()}
    assert len(nodes) == 2, "one CPU per node: each executor on a node of its own"
    lines = ray_sc.parallelize(["a b", "b c", "c c"] * 500, 4)
    counts = lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add).collect()
    assert sorted(counts) == [("a", 500), ("b", 1000), ("c", 1500)]


def _batches(n: int) -> list[list[str]]:
    import random

    rng = random.Random(5)
    return [[" ".join(rng.choices(VOCAB, k=6)) for _ in range(40)] for _ in range(n)]


def _slow_words(line: str) -> list[str]:
    time.sleep(0.001)  # 40 lines a batch: a stage lasts long enough to be hit mid-way
    return line.split()


def test_state_and_windows_stay_exact_when_an_actor_dies_and_a_node_goes(
    ray_sc, ray_session, tmp_path
):
    import ray

    backend = ray_sc._backend
    batches = _batches(90)
    ssc = manual_context(ray_sc, BATCH)
    ssc.checkpoint(str(tmp_path / "ck"))
    words = ssc.queueStream([ray_sc.parallelize(b, 2) for b in batches]).flatMap(_slow_words)
    pairs = words.map(lambda w: (w, 1))
    state = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    window = pairs.reduceByKeyAndWindow(add, sub, 1.0, BATCH)
    got: dict[str, list[dict[str, int]]] = {"state": [], "window": []}
    state.foreachRDD(lambda rdd: got["state"].append(dict(rdd.collect())))
    window.foreachRDD(lambda rdd: got["window"].append({k: v for k, v in rdd.collect() if v}))
    lost: list[str] = []
    real_lost = backend._lost

    def note_lost(w: Any, reason: str) -> None:
        lost.append(w.executor_id)
        real_lost(w, reason)

    backend._lost = note_lost

    def during_next_batch(action: Any) -> None:
        t = threading.Timer(0.02, action)
        t.start()
        run_batches(ssc, 1, timeout=120)
        t.join()

    run_batches(ssc, 30, timeout=120)
    # an executor actor killed mid-stage
    first = sorted(backend.executor_ids())[0]
    during_next_batch(lambda: ray.kill(backend.actor_of(first)))
    run_batches(ssc, 29, timeout=120)
    # a whole node removed mid-stage (not the head: the cluster lives there)
    head = ray_session.head_node.node_id
    on_node = {ray.get(backend.actor_of(e).node_id.remote()): e for e in backend.executor_ids()}
    victim_node = next(
        n for n in ray_session.worker_nodes if n.node_id in on_node and n.node_id != head
    )
    during_next_batch(lambda: ray_session.remove_node(victim_node, allow_graceful=False))
    run_batches(ssc, 29, timeout=120)
    ssc.stop(stopSparkContext=False)
    ssc.awaitTerminationOrTimeout(0)
    ray_session.add_node(**ray_session.dstreams_node_args)  # the next tests get 3 nodes again

    assert first in lost and on_node[victim_node.node_id] in lost
    assert len(backend.executor_ids()) == 2, "replacements were requested and joined"
    # every batch, against a plain-Python model
    total: Counter[str] = Counter()
    per_batch = [Counter(w for line in b for w in line.split()) for b in batches]
    assert len(got["state"]) == len(got["window"]) == 90
    for i in range(90):
        total.update(per_batch[i])
        assert got["state"][i] == dict(total), f"state differs at batch {i + 1}"
        want: Counter[str] = Counter()
        for c in per_batch[max(0, i - 9) : i + 1]:
            want.update(c)
        assert got["window"][i] == dict(want), f"window differs at batch {i + 1}"


def test_ray_listens_on_loopback_only(ray_session):
    import re
    import subprocess

    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ray_sockets, wide = 0, []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        for pid in re.findall(r"pid=(\d+)", line):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "ray" in cmd:
                ray_sockets += 1
                if not local.startswith(("127.", "[::1]", "[::ffff:127.")):
                    wide.append(line)
    assert ray_sockets, "no listening Ray socket found"
    assert wide == [], f"Ray sockets off loopback: {wide}"


def _serve_lines(lines: list[str]) -> tuple[int, threading.Thread]:
    """A TCP server on loopback that sends ``lines`` to its one client, then idles."""
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall("".join(line + "\n" for line in lines).encode())
            time.sleep(30)
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def test_receivers_run_on_ray_executors_one_each_and_lose_nothing(no_context):
    from dstreams.streaming import StreamingContext

    sc = Context("ray", "ray-receivers", conf=Conf(loadDefaults=False))
    try:
        ssc = StreamingContext(sc, 0.2)
        feeds = [[f"s{i} w{j % 7}" for j in range(3000)] for i in range(2)]
        ports = [_serve_lines(f)[0] for f in feeds]
        streams = [ssc.socketTextStream("127.0.0.1", p) for p in ports]
        seen: Counter[str] = Counter()
        lock = threading.Lock()

        def add_batch(rdd: Any) -> None:
            got = rdd.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add).collect()
            with lock:
                seen.update(dict(got))

        ssc.union(*streams).foreachRDD(add_batch)
        ssc.start()
        want = Counter(w for f in feeds for line in f for w in line.split())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if sum(seen.values()) >= sum(want.values()):
                    break
            time.sleep(0.1)
        placed = ssc._receiver_tracker.placements()
        ssc.stop(stopSparkContext=False)
        assert seen == want, "every line received once"
        # the scheduler spread the receivers: one on each executor (each beside its task slot)
        assert sorted(placed.values()) == sorted(sc._backend.executor_ids())
    finally:
        sc.stop()


def _busy(x: int) -> int:
    time.sleep(0.3)
    return x


def test_dynamic_allocation_adds_an_actor_when_batches_take_the_whole_interval(no_context):
    from dstreams.streaming import StreamingContext

    conf = Conf(loadDefaults=False).setAll(
        [
            ("dstreams.streaming.dynamicAllocation.enabled", "true"),
            ("dstreams.streaming.dynamicAllocation.scalingInterval", "2s"),
            ("dstreams.streaming.dynamicAllocation.maxExecutors", "3"),
        ]
    )
    sc = Context("ray", "ray-scaling", conf=conf)
    try:
        ssc = StreamingContext(sc, 0.5)
        # two 0.3 s tasks a batch, one after the other (one partition each stage): ratio ~1.2
        busy = sc.parallelize([1, 2], 1)
        ssc.queueStream([], default=busy).map(_busy).map(lambda x: (x, x)).reduceByKey(add, 1).map(
            _busy
        ).foreachRDD(lambda rdd: rdd.count())
        ssc.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(sc.executorIds()) < 3:
            time.sleep(0.2)
        ssc.stop(stopSparkContext=False)
        assert len(sc.executorIds()) == 3, "the manager asked Ray for a third actor"
        assert ssc._allocation is not None and ssc._allocation.policy.decisions[0].add >= 1
    finally:
        sc.stop()


def test_a_receiver_whose_actor_dies_restarts_on_another_executor(no_context):
    """The actor running a receiver is killed: the receiver starts again elsewhere."""
    import socket

    import ray

    from dstreams.streaming import StreamingContext

    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    port, done = srv.getsockname()[1], threading.Event()

    def serve() -> None:  # every client gets a line every millisecond
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue

            def feed(c: socket.socket) -> None:
                with c:
                    try:
                        while not done.is_set():
                            c.sendall(b"x\n")
                            time.sleep(0.001)
                    except OSError:
                        pass

            threading.Thread(target=feed, args=(conn,), daemon=True).start()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    conf = Conf(loadDefaults=False).set("dstreams.streaming.receiverRestartDelay", "200ms")
    sc = Context("ray", "ray-receiver-restart", conf=conf)
    try:
        ssc = StreamingContext(sc, 0.2)
        counts: list[int] = []
        ssc.socketTextStream("127.0.0.1", port).foreachRDD(lambda rdd: counts.append(rdd.count()))
        ssc.start()
        tracker = ssc._receiver_tracker

        def wait(pred: Any, what: str) -> None:
            deadline = time.monotonic() + 30
            while not pred():
                assert time.monotonic() < deadline, what
                time.sleep(0.05)

        wait(lambda: sum(counts) > 100, "no lines before the kill")
        first = next(iter(tracker.placements().values()))
        assert first is not None
        ray.kill(sc._backend.actor_of(first))
        wait(
            lambda: next(iter(tracker.placements().values())) not in (None, first),
            "the receiver did not start again on another executor",
        )
        before = sum(counts)
        wait(lambda: sum(counts) > before + 100, "no lines after the restart")
        ssc.stop(stopSparkContext=False)
    finally:
        done.set()
        sc.stop()


def test_an_executor_of_two_cores_is_one_actor_of_two_processes(no_context, ray_session):
    """``dstreams.executor.cores=2``: one actor, two task processes, its two CPUs held once.

    A process that dies is started again in the same actor (which still holds its CPU), so
    the cluster is never oversubscribed; removing both processes lets the actor go.
    """
    import os
    import signal

    import ray

    node = ray_session.add_node(**dict(ray_session.dstreams_node_args, num_cpus=2))
    ray_session.wait_for_nodes()
    conf = (
        Conf(loadDefaults=False)
        .set("dstreams.executor.instances", "1")
        .set("spark.executor.cores", "2")  # the spark. alias
    )
    sc = Context("ray", "ray-two-cores", conf=conf)
    backend = sc._backend
    total = ray.cluster_resources()["CPU"]

    def wait(pred: Any, what: str) -> None:
        deadline = time.monotonic() + 30
        while not pred():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    def used() -> float:
        return total - ray.available_resources().get("CPU", 0.0)

    def job_ok() -> None:
        got = sc.parallelize(range(1000), 4).map(lambda x: (x % 7, x)).reduceByKey(add)
        assert sorted(got.collect()) == sorted(
            Counter({k: sum(x for x in range(1000) if x % 7 == k) for k in range(7)}).items()
        )

    try:
        ids = sc.executorIds()
        assert len(ids) == 2 and sc.defaultParallelism == 2
        actor = backend.actor_of(ids[0])
        assert backend.actor_of(ids[1]) is actor
        assert ray.get(actor.node_id.remote()) == node.node_id, "only that node has 2 CPUs"
        pids = backend.worker_pids()
        assert pids[ids[0]] != pids[ids[1]] and 0 not in pids.values()
        wait(lambda: used() == 2, "the actor should hold its 2 CPUs")
        job_ok()

        os.kill(pids[ids[0]], signal.SIGKILL)  # one core's process crashes
        wait(lambda: ids[0] not in sc.executorIds() and len(sc.executorIds()) == 2, "no respawn")
        new = next(e for e in sc.executorIds() if e != ids[1])
        assert backend.actor_of(new) is actor, "started again inside the same actor"
        wait(lambda: backend.worker_pids().get(new, 0) != 0, "the new process has no pid")
        assert backend.worker_pids()[ids[1]] == pids[ids[1]], "the sibling was left alone"
        assert used() == 2, "no second actor: the cluster is not oversubscribed"
        job_ok()

        assert sc.killExecutors(sc.executorIds())
        wait(lambda: not sc.executorIds(), "the processes were not removed")
        wait(lambda: used() == 0, "an actor with no process left should be let go")
        assert sc.requestExecutors(1)
        wait(lambda: len(sc.executorIds()) == 2, "one more executor is one actor of 2 cores")
        job_ok()
    finally:
        sc.stop()
        ray_session.remove_node(node)
