"""Start the servers under test as real processes, wait for them, watch their memory.

Every server runs in its own session (process group) so that stopping it also stops the
workers uvicorn forks for WEB_CONCURRENCY > 1; only processes this harness started are
ever signalled, by their group id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant, parents first."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo += _children(current)
    return tree


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class MemoryWatch:
    """Samples the RSS of every process in a tree every `interval` seconds, in a thread."""

    pid: int
    interval: float = 0.2
    peak_per_process: dict[int, float] = field(default_factory=dict)
    peak_total: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> dict[int, float]:
        return {p: rss_mb(p) for p in process_tree(self.pid)}

    def _loop(self) -> None:
        while not self._stop.is_set():
            sizes = self.sample()
            for pid, size in sizes.items():
                self.peak_per_process[pid] = max(self.peak_per_process.get(pid, 0.0), size)
            self.peak_total = max(self.peak_total, sum(sizes.values()))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_largest(self) -> float:
        """The largest single process: the figure the 150 MB web target is about."""
        return max(self.peak_per_process.values(), default=0.0)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def memory(self) -> dict[str, float]:
        """RSS now: the largest process of the tree (a web worker) and the whole tree."""
        sizes = [rss_mb(p) for p in process_tree(self.pid)]
        return {"largest_mb": round(max(sizes, default=0.0), 1), "tree_mb": round(sum(sizes), 1)}


def _http_answers(port: int, path: str) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(16).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def wait_http(server: Server, *, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}; "
                f"see {server.log_path}:\n{server.log_path.read_text()[-3000:]}"
            )
        if _http_answers(server.port, path):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{server.name} did not answer on port {server.port} in {timeout}s")


def start(
    name: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    port: int,
    log_dir: Path,
) -> Server:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name=name, process=process, port=port, log_path=log_path)


def stop(server: Server, *, timeout: float = 20.0) -> None:
    if server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


@contextlib.contextmanager
def running(
    name: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    port: int,
    log_dir: Path,
    ready_path: str | None = "/healthz",
    settle: float = 0.5,
) -> Iterator[Server]:
    """Run a server for the block; `ready_path` None means "started" is enough (a worker)."""
    server = start(name, args, env=env, port=port, log_dir=log_dir)
    try:
        if ready_path is not None:
            wait_http(server, path=ready_path)
        time.sleep(settle)  # let every forked worker finish its start-up
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited early; see {server.log_path}")
        yield server
    finally:
        stop(server)


def uvicorn_args(factory: str, *, port: int, workers: int) -> list[str]:
    """The same uvicorn settings `hub-receiver serve` uses (no access log, proxy headers)."""
    return [
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--proxy-headers",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "15",
    ]


def receiver_args(*, port: int) -> list[str]:
    return ["-m", "receiver", "serve", "--host", HOST, "--port", str(port)]
