"""Start the servers under test as real processes, wait for them, watch their memory.

Every server runs in its own session (process group) so that stopping it also stops the
workers uvicorn forks for WEB_CONCURRENCY > 1; only processes this harness started are
ever signalled, by their group id.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
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


@dataclass(frozen=True)
class Code:
    """The receiver tree a server runs from: its `receiver` package, alembic.ini, migrations.

    A process started for it runs in `root` with PYTHONPATH=`root`: the project is installed
    editable (a .pth naming the checkout), and both the working directory `python -m` puts
    first on sys.path and PYTHONPATH win over a .pth, so `import receiver` is `root`'s.
    """

    name: str
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root)}

    @classmethod
    def imported(cls) -> Code:
        """The tree this interpreter imports `receiver` from (a baseline's, under bench.run)."""
        spec = importlib.util.find_spec("receiver")
        assert spec is not None and spec.origin is not None
        return cls(name="current", root=Path(spec.origin).resolve().parents[1])


# Used where no code is passed: the working tree in the bench process, the baseline's tree in
# a bench module run as a subprocess for the baseline. `bench.run` also sets it around
# bench/ingest.py's calls, which take no code parameter (that file is someone else's).
DEFAULT_CODE: contextvars.ContextVar[Code | None] = contextvars.ContextVar(
    "DEFAULT_CODE", default=None
)


def code_or_default(code: Code | None) -> Code:
    return code or DEFAULT_CODE.get() or Code.imported()


@contextlib.contextmanager
def using(code: Code) -> Iterator[None]:
    """Start every server without an explicit code from `code` for the block."""
    token = DEFAULT_CODE.set(code)
    try:
        yield
    finally:
        DEFAULT_CODE.reset(token)


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


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 when it is gone)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    return 0.0


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


@dataclass
class CpuShare:
    """Who used the CPU during a run: the server under test, and everyone else.

    The machine is shared (other engineers run tests and servers on it); `other_pct` says
    how much of the machine's capacity went to processes outside the server tree and the
    load generator, so a figure taken on a busy machine can be recognised as such.
    """

    pid: int
    _start: tuple[float, float] = (0.0, 0.0)
    _tree_start: dict[int, float] = field(default_factory=dict)
    _children_start: float = 0.0
    result: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> CpuShare:
        self._tree_start = {p: cpu_seconds(p) for p in process_tree(self.pid)}
        self._children_start = os.times().children_user + os.times().children_system
        self._start = machine_busy_seconds()
        return self

    def __exit__(self, *_exc: object) -> None:
        busy, total = machine_busy_seconds()
        tree = sum(cpu_seconds(p) - self._tree_start.get(p, 0.0) for p in process_tree(self.pid))
        children = os.times().children_user + os.times().children_system - self._children_start
        capacity = total - self._start[1]
        used = busy - self._start[0]
        if capacity <= 0:
            return
        self.result = {
            "server_cpu_pct": round(100 * tree / capacity, 1),
            "loadgen_cpu_pct": round(100 * children / capacity, 1),
            "machine_busy_pct": round(100 * used / capacity, 1),
            "other_pct": round(100 * max(0.0, used - tree - children) / capacity, 1),
        }


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
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            )
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


def wait_log(server: Server, text: str, *, timeout: float = 60.0) -> None:
    """Wait until the server's log shows `text` (a worker has no port to poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_path.read_text(errors="replace"):
            return
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log_path}")
        time.sleep(0.1)
    raise TimeoutError(f"{server.name} did not log {text!r} in {timeout}s")


def start(
    name: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    port: int,
    log_dir: Path,
    code: Code | None = None,
) -> Server:
    code = code_or_default(code)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=code.root,
            env={**os.environ, **code.env, **env},
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
    code: Code | None = None,
) -> Iterator[Server]:
    """Run a server for the block; `ready_path` None means "started" is enough (a worker)."""
    server = start(name, args, env=env, port=port, log_dir=log_dir, code=code)
    try:
        if ready_path is not None:
            wait_http(server, path=ready_path)
        time.sleep(settle)  # let every forked worker finish its start-up
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited early; see {server.log_path}")
        yield server
    finally:
        stop(server)


WORKER_ARGS = ["-m", "receiver", "worker"]


def running_worker(
    name: str,
    *,
    env: Mapping[str, str],
    log_dir: Path,
    code: Code | None = None,
    settle: float = 0.0,
) -> contextlib.AbstractContextManager[Server]:
    """`hub-receiver worker` for the block (no port; wait for its "runtime open" line)."""
    return running(
        name,
        WORKER_ARGS,
        env=env,
        port=0,
        log_dir=log_dir,
        code=code,
        ready_path=None,
        settle=settle,
    )


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
