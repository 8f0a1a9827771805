"""Bad arguments fail when the graph is built, with a message naming the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from dstreams.streaming import StreamingContext


def test_streaming_context_needs_a_context():
    with pytest.raises(TypeError, match="needs a dstreams Context, got 'notsc'"):
        StreamingContext("notsc", 1)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s: s.map(3), "DStream.map: f must be a function, got 3"),
        (lambda s: s.filter("x"), "DStream.filter: f must be a function, got 'x'"),
        (lambda s: s.reduceByKey(None), "DStream.reduceByKey: func must be a function"),
        (lambda s: s.foreachRDD(None), "DStream.foreachRDD: func must be a function"),
        (
            lambda s: s.updateStateByKey(1),
            "DStream.updateStateByKey: updateFunc must be a function",
        ),
        (
            lambda s: s.reduceByKeyAndWindow(5, None, 3, 1),
            "DStream.reduceByKeyAndWindow: func must be a function, got 5",
        ),
    ],
)
def test_functions_are_checked_when_the_graph_is_built(ssc: Any, build: Any, message: str):
    stream = ssc.queueStream([[1]])
    with pytest.raises(TypeError, match=message):
        build(stream)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda c: c.socketTextStream("localhost", "abc"), "port must be an integer .* 'abc'"),
        (lambda c: c.socketTextStream("localhost", 70000), "port must be .* 70000"),
        (lambda c: c.socketTextStream("", 9999), "hostname must be a non-empty string"),
        (lambda c: c.textFileStream(""), "directory must be a non-empty path"),
        (lambda c: c.binaryRecordsStream("/tmp", 0), "recordLength must be a positive int"),
    ],
)
def test_sources_check_their_arguments(ssc: Any, build: Any, message: str):
    with pytest.raises(ValueError, match=message):
        build(ssc)
