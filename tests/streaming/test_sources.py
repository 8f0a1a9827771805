"""Sources: socket receiver (with reconnect), text and binary file streams."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from dstreams.streaming import StreamingListener
from dstreams.testing import CollectingSink, run_batches


class LineServer:
    """A local TCP server that sends one payload per accepted connection, then closes."""

    def __init__(self, payloads: list[bytes]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.payloads = payloads
        self.release = [threading.Event() for _ in payloads]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for payload, release in zip(self.payloads, self.release):
            conn, _ = self.sock.accept()
            conn.sendall(payload)
            release.wait(10)
            conn.close()
        self.sock.close()


def test_socket_text_stream_reconnects(ssc: Any) -> None:
    server = LineServer([b"hello world\nfoo\r\n", "caf\u00e9\n".encode()])
    errors: list[str] = []

    records: list[int] = []

    class L(StreamingListener):
        def onBatchCompleted(self, batchCompleted: Any) -> None:
            records.append(batchCompleted.batchInfo().numRecords())

        def onReceiverError(self, receiverError: Any) -> None:
            errors.append(receiverError.receiverInfo().lastErrorMessage())

    listener = L()
    ssc.addStreamingListener(listener)
    ssc._receiver_tracker.restart_delay = 20
    lines = ssc.socketTextStream("127.0.0.1", server.port)
    sink = CollectingSink(lines, sort=False)
    blocks = CollectingSink(lines.glom().map(len), sort=False)
    ssc.start()
    tracker = ssc._receiver_tracker
    assert tracker.wait_for_received(2, 10)
    run_batches(ssc, 1)
    assert sink.results == [["hello world", "foo"]]
    assert sum(blocks.results[0]) == 2 and len(blocks.results[0]) >= 1
    server.release[0].set()  # drop the connection: the receiver reconnects
    assert tracker.wait_for_received(3, 10)
    run_batches(ssc, 1)
    assert sink.results[1] == ["caf\u00e9"]
    assert any("no more data" in e for e in errors)
    assert records == [2, 1]
    server.release[1].set()


def test_socket_stream_empty_batch_has_no_partitions(ssc: Any) -> None:
    sink = CollectingSink(ssc.socketTextStream("127.0.0.1", 9).count(), sort=False)
    ssc._receiver_tracker.restart_delay = 60_000
    run_batches(ssc, 1)
    assert sink.results == [[]]  # as PySpark: count of a batch with no blocks is empty


def _move_in(directory: Any, name: str, data: bytes) -> None:
    staging = directory.parent / f"staging-{name}"
    staging.write_bytes(data)
    os.replace(staging, directory / name)


def test_text_file_stream(ssc: Any, tmp_path: Any) -> None:
    watched = tmp_path / "in"
    watched.mkdir()
    (watched / "old.txt").write_text("old\n")
    sink = CollectingSink(ssc.textFileStream(str(watched)), sort=True)
    ssc.start()
    _move_in(watched, "a.txt", b"x\ny\r\nz")
    _move_in(watched, ".hidden", b"h\n")
    _move_in(watched, "_tmp", b"t\n")
    run_batches(ssc, 1)
    _move_in(watched, "b.txt", b"w\n")
    run_batches(ssc, 2)
    assert sink.results == [["x", "y", "z"], ["w"], []]


def test_binary_records_stream(ssc: Any, tmp_path: Any) -> None:
    watched = tmp_path / "bin"
    watched.mkdir()
    sink = CollectingSink(ssc.binaryRecordsStream(str(watched), 4), sort=False)
    ssc.start()
    _move_in(watched, "r.bin", b"aaaabbbbcccc")
    run_batches(ssc, 1)
    assert sink.results == [[b"aaaa", b"bbbb", b"cccc"]]


def test_socket_text_that_is_not_utf8_is_reported_not_dropped(ssc: Any) -> None:
    server = LineServer([b"ok\nbad \xff line\n"])
    errors: list[str] = []

    class L(StreamingListener):
        def onReceiverError(self, receiverError: Any) -> None:
            errors.append(receiverError.receiverInfo().lastErrorMessage())

    ssc.addStreamingListener(L())
    lines = ssc.socketTextStream("127.0.0.1", server.port)
    sink = CollectingSink(lines, sort=False)
    ssc.start()
    assert ssc._receiver_tracker.wait_for_received(2, 10)
    run_batches(ssc, 1)
    assert sink.results == [["ok", "bad \ufffd line"]]
    assert any("not UTF-8" in e for e in errors)
    server.release[0].set()


def test_input_info_is_reported_only_by_the_streams_spark_reports(ssc: Any, tmp_path: Any) -> None:
    from dstreams.testing import TestSource

    infos: list[dict[int, Any]] = []

    class L(StreamingListener):
        def onBatchCompleted(self, batchCompleted: Any) -> None:
            infos.append(batchCompleted.batchInfo().streamIdToInputInfo())

    ssc.addStreamingListener(L())
    queue = TestSource(ssc, [[1, 2, 3]]).stream
    CollectingSink(queue)
    watched = tmp_path / "in"
    watched.mkdir()
    files = ssc.textFileStream(str(watched))
    CollectingSink(files)
    ssc.start()
    staged = tmp_path / "a.txt"
    staged.write_text("x\ny\n")
    staged.rename(watched / "a.txt")
    run_batches(ssc, 1)
    (batch,) = infos
    # a queue stream reports nothing; a file stream reports its files with 0 records
    assert set(batch) == {files.id}
    info = batch[files.id]
    assert info.numRecords() == 0
    assert [f.rsplit("/", 1)[-1] for f in info.metadata()["files"]] == ["a.txt"]
    assert info.metadataDescription().endswith("a.txt")
