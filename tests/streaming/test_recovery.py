"""Restarting a driver from its metadata checkpoint, one real Context per driver run.

``test_driver_recovery.py`` recovers on one shared Context; here every "driver" is a Context
of its own, as after a real crash, so RDD ids start again at 0 in each:

* each driver writes its RDD checkpoints in a directory of its own (as Spark), so a recovered
  driver never overwrites, or reads, a file that another run wrote under the same RDD id; the
  files earlier runs left that the recovered state does not name are deleted at recovery;
* a checkpoint written while the pending batches run again still lists every batch that has
  not run again yet, and the newest batch generated before the restart, so a second crash in
  the middle of the re-runs finds all of them again.
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext
from dstreams.streaming.checkpoint import CheckpointStore, _unframe
from dstreams.streaming.sinks import FileSink
from dstreams.testing import run_batches

BATCH = 0.1


@pytest.fixture(autouse=True)
def no_active_context() -> Any:
    """Every test makes its own Contexts (one per driver run)."""
    active = Context._active
    if active is not None:
        pytest.skip("another Context is active in this process")
    yield
    ssc = StreamingContext.getActive()
    if ssc is not None:
        ssc.stop(stopSparkContext=True)
    if Context._active is not None:
        Context._active.stop()


def driver(work: Path) -> StreamingContext:
    """One driver run of a word count with state checkpointed every batch."""

    def setup() -> StreamingContext:
        conf = Conf(loadDefaults=False).set("dstreams.streaming.clock", "manual")
        sc = Context("local[2]", "recovery-runs", conf=conf)
        ssc = StreamingContext(sc, BATCH)
        words = ssc.textFileStream(str(work / "inbox")).flatMap(str.split)
        state = words.map(lambda w: (w, 1)).updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
        state.checkpoint(BATCH)
        state.writeToSink(FileSink(str(work / "out"), "state"))
        return ssc

    return StreamingContext.getOrCreate(str(work / "ck"), setup)


def feed(ssc: StreamingContext, work: Path, texts: list[str]) -> None:
    ssc.start()
    for i, text in enumerate(texts):
        staged = work / f".{uuid.uuid4()}"
        staged.write_text(text)
        staged.rename(work / "inbox" / f"{uuid.uuid4()}-{i}.txt")
        run_batches(ssc, 1, timeout=30)
    ssc.awaitTerminationOrTimeout(0)


def crash(ssc: StreamingContext) -> None:
    """End a driver run the way a kill would leave it for the next: no graceful stop."""
    ssc.stop(stopSparkContext=True, stopGraceFully=False)


def last_state(work: Path) -> dict[str, int]:
    committed = FileSink(str(work / "out"), "state").committed()
    parts = committed[max(committed)]
    return dict(eval(line) for lines in parts.values() for line in lines)


def rdd_dirs(root: Path) -> set[tuple[str, str]]:
    out = set()
    for run in root.iterdir():
        try:
            uuid.UUID(run.name)
        except ValueError:
            continue
        out |= {(run.name, d.name) for d in run.iterdir()}
    return out


def test_each_driver_checkpoints_rdds_in_a_directory_of_its_own_and_removes_orphans(tmp_path):
    (tmp_path / "inbox").mkdir()
    first = driver(tmp_path)
    feed(first, tmp_path, ["a b", "a", "c"])
    first_dir = Path(first._sc.getCheckpointDir())
    assert first_dir.parent == tmp_path / "ck"
    # a recovery restores each stream's newest checkpoint: its files are all it needs
    kept = {
        tuple(s._ckpt_rdds[max(s._ckpt_rdds)][1].rstrip("/").rsplit("/", 2)[-2:])
        for s in first._graph._all_streams()
        if s._ckpt_rdds
    }
    assert kept
    crash(first)
    # what a driver killed mid-checkpoint leaves: files it wrote but never recorded
    (first_dir / "rdd-9999").mkdir()
    (first_dir / "rdd-9999" / "part-00000").write_bytes(b"x")
    stray = tmp_path / "ck" / str(uuid.uuid4())
    (stray / "rdd-3").mkdir(parents=True)
    (stray / "rdd-3" / "part-00000").write_bytes(b"x")
    assert rdd_dirs(tmp_path / "ck") >= kept | {(first_dir.name, "rdd-9999")}

    second = driver(tmp_path)
    try:
        assert second._recovered_from is not None
        second_dir = Path(second._sc.getCheckpointDir())
        assert second_dir != first_dir and second_dir.parent == tmp_path / "ck"
        left = rdd_dirs(tmp_path / "ck")
        assert left == kept, "only what the recovered state names is left of earlier runs"
        assert not stray.exists()
        feed(second, tmp_path, ["b b", "d"])
        # every RDD checkpoint the second driver wrote is in its own directory
        written = {info[1] for s in second._graph._all_streams() for info in s._ckpt_rdds.values()}
        assert written and all(Path(p).parent == second_dir for p in written)
        assert last_state(tmp_path) == {"a": 2, "b": 3, "c": 1, "d": 1}
    finally:
        crash(second)


def _checkpoints(work: Path) -> list[Any]:
    store = CheckpointStore(str(work / "ck"))
    out = []
    for _, path in store._listing():
        with open(path, "rb") as fh:
            out.append(pickle.loads(_unframe(fh.read(), path)))
    return out


def test_checkpoints_written_during_the_re_runs_keep_every_batch_still_to_run(tmp_path):
    (tmp_path / "inbox").mkdir()
    first = driver(tmp_path)
    feed(first, tmp_path, ["a b", "a", "c", "b", "a", "d"])
    crash(first)
    # the newest checkpoint as a driver that fell behind leaves it: its last four batches
    # were generated (their plans are recorded) but had not completed
    store = CheckpointStore(str(tmp_path / "ck"))
    cp = store.read_latest()
    assert cp is not None and cp.last_generated_ms is not None
    last = cp.last_generated_ms
    step = round(BATCH * 1000)
    cp.pending = [last - i * step for i in range(3, -1, -1)]
    store.write(cp)
    seq_before = store._listing()[-1][0]

    second = driver(tmp_path)
    try:
        run_batches(second, 1, timeout=30)  # the re-runs, then one new batch
        written = [c for c in _checkpoints(tmp_path) if c.seq > seq_before]
        assert written, "the re-runs wrote no checkpoint"
        for c in written:
            assert c.last_generated_ms >= last, (
                f"checkpoint {c.seq} forgot that batch {last} was generated"
            )
            missing = [t for t in cp.pending if t > c.time_ms and t not in c.pending]
            assert not missing, f"checkpoint {c.seq} forgot the re-runs of {missing}"
        assert last_state(tmp_path) == {"a": 3, "b": 2, "c": 1, "d": 1}
    finally:
        crash(second)
