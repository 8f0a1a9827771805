"""StreamingContext lifecycle, failures, listeners and cleanup."""

from __future__ import annotations

from typing import Any

import pytest

from dstreams import errors
from dstreams.streaming import StreamingContext, StreamingListener
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches


def test_lifecycle_and_active_context(ssc: Any) -> None:
    assert StreamingContext.getActive() is None
    CollectingSink(TestSource(ssc, [[1]]).stream)
    ssc.start()
    assert StreamingContext.getActive() is ssc
    assert StreamingContext.getActiveOrCreate(None, lambda: pytest.fail("must not create")) is ssc
    ssc.start()  # a second start only warns
    with pytest.raises(RuntimeError, match="after starting"):
        TestSource(ssc, [])
    assert ssc.awaitTerminationOrTimeout(0) is False
    ssc.stop(stopSparkContext=False)
    assert StreamingContext.getActive() is None
    assert ssc.awaitTerminationOrTimeout(0) is True
    ssc.awaitTermination()
    with pytest.raises(RuntimeError, match="already been stopped"):
        ssc.start()


def test_context_accessors_and_get_or_create(sc: Any, tmp_path: Any) -> None:
    created: list[StreamingContext] = []

    def setup() -> StreamingContext:
        created.append(manual_context(sc, 2))
        return created[-1]

    ssc = StreamingContext.getOrCreate(str(tmp_path), setup)
    assert created == [ssc]
    assert ssc.sparkContext is sc and ssc.context is sc
    assert ssc._checkpoint_dir == str(tmp_path)
    other = StreamingContext.getActiveOrCreate(None, setup)
    assert other is created[-1] and len(created) == 2
    with pytest.raises(ValueError, match="batchDuration"):
        StreamingContext(sc)


def test_start_without_outputs_fails(ssc: Any) -> None:
    TestSource(ssc, [[1]])
    with pytest.raises(ValueError, match="No output operations"):
        ssc.start()


def test_worker_failure_fails_batch_only_and_surfaces(ssc: Any) -> None:
    def risky(x: int) -> int:
        if x == 2:
            raise ZeroDivisionError("bad record 2")
        return x

    sink = CollectingSink(TestSource(ssc, [[1], [2], [3]]).stream.map(risky))
    run_batches(ssc, 3)
    assert sink.results == [[1], [3]]
    with pytest.raises(errors.TaskFailedError) as info:
        ssc.awaitTerminationOrTimeout(5)
    assert "ZeroDivisionError" in str(info.value) and "bad record 2" in str(info.value)
    assert "risky" in info.value.remote_traceback
    assert ssc.awaitTerminationOrTimeout(0) is False  # reported once


def test_driver_side_failure_keeps_user_traceback(ssc: Any) -> None:
    def output(rdd: Any) -> None:
        if rdd.collect() == [1]:
            raise ValueError("output failed")

    stream = TestSource(ssc, [[1], [2]]).stream
    stream.foreachRDD(output)
    sink = CollectingSink(stream)
    run_batches(ssc, 2)
    assert sink.results == [[1], [2]]
    with pytest.raises(ValueError, match="output failed") as info:
        ssc.awaitTermination(5)
    assert any(frame.name == "output" for frame in info.traceback)


def test_transform_failure_at_generation_is_reported(ssc: Any) -> None:
    def bad(t: Any, rdd: Any) -> Any:
        raise KeyError("no model")

    CollectingSink(TestSource(ssc, [[1]]).stream.transform(bad))
    run_batches(ssc, 2)
    with pytest.raises(KeyError, match="no model"):
        ssc.awaitTerminationOrTimeout(5)


class Recorder(StreamingListener):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, Any]] = []

    def onStreamingStarted(self, streamingStarted: Any) -> None:
        self.events.append(("started", streamingStarted.time()))

    def onBatchSubmitted(self, batchSubmitted: Any) -> None:
        self.events.append(("submitted", batchSubmitted.batchInfo()))

    def onBatchStarted(self, batchStarted: Any) -> None:
        self.events.append(("batchStarted", batchStarted.batchInfo()))

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        self.events.append(("completed", batchCompleted.batchInfo()))

    def onOutputOperationStarted(self, outputOperationStarted: Any) -> None:
        self.events.append(("opStarted", outputOperationStarted.outputOperationInfo()))

    def onOutputOperationCompleted(self, outputOperationCompleted: Any) -> None:
        self.events.append(("opCompleted", outputOperationCompleted.outputOperationInfo()))


def test_listener_events(ssc: Any) -> None:
    rec = Recorder()
    ssc.addStreamingListener(rec)
    stream = TestSource(ssc, [[1, 2]]).stream
    stream.pprint()
    stream.foreachRDD(lambda rdd: None)
    run_batches(ssc, 1)
    kinds = [k for k, _ in rec.events]
    assert kinds == [
        "started",
        "submitted",
        "batchStarted",
        "opStarted",
        "opCompleted",
        "opStarted",
        "opCompleted",
        "completed",
    ]
    submitted, completed = rec.events[1][1], rec.events[-1][1]
    assert submitted.processingDelay() == -1 and submitted.schedulingDelay() == -1
    assert completed.batchTime().milliseconds() == 1000
    assert completed.processingDelay() >= 0 and completed.schedulingDelay() >= 0
    assert completed.totalDelay() == completed.processingDelay() + completed.schedulingDelay()
    ops = completed.outputOperationInfos()
    assert sorted(ops) == [0, 1] and ops[0].name() == "pprint" and ops[1].failureReason() is None


def test_failed_output_reports_failure_reason(ssc: Any) -> None:
    rec = Recorder()
    ssc.addStreamingListener(rec)
    TestSource(ssc, [[1]]).stream.foreachRDD(lambda rdd: 1 / 0)
    run_batches(ssc, 1)
    done = [info for kind, info in rec.events if kind == "opCompleted"]
    assert "ZeroDivisionError" in done[0].failureReason()
    with pytest.raises(ZeroDivisionError):
        ssc.awaitTerminationOrTimeout(5)


def test_metadata_is_bounded_and_cleared_on_stop(ssc: Any) -> None:
    stream = TestSource(ssc, [[i] for i in range(30)]).stream.map(lambda x: x).window(3, 1)
    CollectingSink(stream.count())
    run_batches(ssc, 10)
    held = ssc._graph.held_rdd_count()
    run_batches(ssc, 20)
    assert ssc._graph.held_rdd_count() == held  # bounded by the remember durations
    ssc.stop(stopSparkContext=False)
    assert ssc._graph.held_rdd_count() == 0
    assert ssc._receiver_tracker.blocks.is_empty()


def test_graceful_stop_finishes_queued_batches(ssc: Any) -> None:
    sink = CollectingSink(TestSource(ssc, [[1]]).stream)
    run_batches(ssc, 1)
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert sink.results == [[1]]
