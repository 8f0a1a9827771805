"""Built-in sources: the TCP text receiver and the helpers behind ``StreamingContext``'s inputs.

* :class:`SocketReceiver` (``socketTextStream``): UTF-8 lines over TCP; when the
  connection drops or cannot be made it asks to be restarted, which reconnects
  after the restart delay.  It reads in 64 KiB chunks and buffers whole chunks of
  lines at once (``storeBuffered``: TCP cannot replay, so nothing waits for
  durability; data in flight is lost when its executor or the driver dies).
* ``queueStream``, ``textFileStream`` and ``binaryRecordsStream`` are input
  streams (``operators/input.py``); they need no receiver.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from dstreams.streaming.receiver import Receiver

__all__ = ["SocketReceiver"]


class SocketReceiver(Receiver):
    """Receives UTF-8, newline-separated text from ``host:port``."""

    def __init__(self, host: str, port: int, storageLevel: Any = None) -> None:
        super().__init__(storageLevel)
        self.host, self.port = host, int(port)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._sock_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(_sock=None, _thread=None, _sock_lock=None)  # made again where it runs
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sock_lock = threading.Lock()

    def name(self) -> str:
        """Return ``SocketReceiver(host:port)``."""
        return f"SocketReceiver({self.host}:{self.port})"

    def onStart(self) -> None:
        """Start the thread that connects and reads."""
        self._thread = threading.Thread(target=self._receive, name=self.name(), daemon=True)
        self._thread.start()

    def onStop(self) -> None:
        """Close the socket, which ends the reading thread."""
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.5)

    def _receive(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=10)
            sock.settimeout(None)
        except OSError as e:
            if not self.isStopped():
                self.restart(f"Error connecting to {self.host}:{self.port}", e)
            return
        with self._sock_lock:
            self._sock = sock
        try:
            self._read_lines(sock)
        except OSError as e:
            if not self.isStopped():
                self.restart(f"Error receiving data from {self.host}:{self.port}", e)
            return
        if not self.isStopped():
            self.restart(f"Socket data stream from {self.host}:{self.port} had no more data")

    def _read_lines(self, sock: socket.socket) -> None:
        pending = b""
        while not self.isStopped():
            chunk = sock.recv(65536)
            if not chunk:
                break
            cut = chunk.rfind(b"\n")
            if cut < 0:
                pending += chunk
                continue
            complete, pending = pending + chunk[:cut], chunk[cut + 1 :]
            text = self._decode(complete)
            lines = text.split("\n")
            if "\r" in text:
                lines = [ln.removesuffix("\r") for ln in lines]
            self.storeBuffered(lines)  # TCP cannot replay: no need to wait for durability
        if pending and not self.isStopped():
            self.store(self._decode(pending).rstrip("\r"))

    def _decode(self, data: bytes) -> str:
        """UTF-8 text; malformed bytes become U+FFFD (as Spark's reader) and are reported."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.reportError(
                f"{self.name()} received bytes that are not UTF-8 ({e.reason}); "
                "they were replaced by U+FFFD in the affected lines"
            )
            return data.decode("utf-8", "replace")
