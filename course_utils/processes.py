"""Server processes that always stop: a subprocess in its own process group on a loopback port, started, waited
for until it answers, and stopped again on leaving a ``with`` block, on an exception or KeyboardInterrupt, and when
the Python process (or Jupyter kernel) exits, normally or killed (Linux: the server gets SIGTERM when its parent
dies). ``serving.VLLMServer`` and ``deploy.BentoServer`` are the two kinds the course starts.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from pathlib import Path

_RUNNING: weakref.WeakSet = weakref.WeakSet()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Could a server listen on this loopback port? (Like servers, ignore closed connections in TIME_WAIT.)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def claim_port(port: int | None) -> int:
    """``port`` if a server can listen there, a free one for None; a clear error for a busy one."""
    if port is None:
        return free_port()
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be a whole number in 1..65535 (or None for a free one), got {port!r}")
    if not port_is_free(port):
        raise OSError(f"port {port} on 127.0.0.1 is already in use (another server?); pass another port, or "
                      "port=None to pick a free one")
    return port


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): if the Python process that started the server dies, even by SIGKILL
    (a crashed or force-killed Jupyter kernel), the kernel sends the server SIGTERM."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class BackgroundServer:
    """A server subprocess in its own process group on a loopback port: started, waited for (``health_path``
    answers 200), and always stopped again. Subclasses set ``args``, ``env``, ``port`` and ``what``."""

    what = "server"
    health_path = "/health"
    health_headers: dict[str, str] = {}   # sent with the health check (a server that wants a key on every route)
    failure_line: str | None = None     # a log line that means start-up failed even though the process lives on
    args: list[str]
    env: dict[str, str]
    port: int
    startup_timeout: float

    def _prepare(self, prefix: str) -> None:
        self.log_path = Path(tempfile.mkdtemp(prefix=prefix)) / "server.log"
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """The server's root, e.g. for ``/health`` or ``/metrics``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What the OpenAI client takes as ``base_url``."""
        return f"{self.url}/v1"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self):
        started = time.time()
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True,   # its own process group: we stop all of it
                                        preexec_fn=_die_with_parent)
        log.close()
        _RUNNING.add(self)
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.time() - started
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.what} exited during start-up (code {self.process.returncode}). "
                                   f"End of its log ({self.log_path}):\n{self.log_tail()}")
            if self.failure_line and self.failure_line in self.log_tail(400):
                raise RuntimeError(f"the {self.what} failed to start (its log says {self.failure_line!r}). "
                                   f"End of its log ({self.log_path}):\n{self.log_tail(60)}")
            try:
                request = urllib.request.Request(self.url + self.health_path, headers=self.health_headers)
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the {self.what} did not become ready within {self.startup_timeout:.0f} s (a big "
                           f"model may need longer: pass startup_timeout=...). End of its log:\n{self.log_tail()}")

    def processes(self) -> list[int]:
        """Ids of the server's processes still running: the one started and every descendant (engine processes,
        and the workers a supervisor such as BentoML's starts in sessions of their own)."""
        return [] if self.process is None else process_tree(self.process.pid)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the server (it stops its own workers), then SIGKILL to whatever of its process tree is still
        running after ``grace`` seconds. Safe to call twice."""
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is None:
            return
        tree = process_tree(process.pid)          # noted first: children outlive a killed parent
        deadline = time.time() + grace
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        while time.time() < deadline and (process.poll() is None or any(map(is_running, tree))):
            time.sleep(0.2)
        for pid in [pid for pid in tree if is_running(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)

    def client(self, **options):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key="not-needed", **options)

    def __enter__(self):
        """``with server:`` starts it, or takes over one already started; either way it is stopped on leaving."""
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, parent, group, ...), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def is_running(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"       # a zombie has exited; only its parent's wait is missing


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are running (Linux: read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root] if is_running(root) else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop(grace=5.0)
