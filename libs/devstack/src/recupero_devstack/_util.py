"""Small helpers shared by the devstack servers."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

_T = TypeVar("_T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def run_async(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a private event loop in a thread.

    The servers' start()/stop() are sync but are often called from inside a
    running loop (async pytest fixtures), where asyncio.run() is refused.
    """
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="devstack-async", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


_PROBLEM = re.compile(r"\b(ERROR|FATAL|PANIC)\b|^Caused by: ")


def log_excerpt(path: Path, since: int = 0, tail: int = 40) -> str:
    """What went wrong, for error messages: the log's error lines, then its tail.

    ``since`` is the byte offset where this run's output starts (logs are
    appended to across restarts). The cause of a failed start is often far
    above the tail, under the server's own shutdown chatter.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(since)
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    problems = [line for line in lines if _PROBLEM.search(line)][:20]
    parts = [f"--- {path} (errors) ---", *problems] if problems else []
    parts += [f"--- {path} (last {tail} lines) ---", *lines[-tail:]]
    return "\n".join(parts)


class Managed:
    """Started and stopped around a `with` block (tests, benchmarks)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalServer(Managed):
    """A local stand-in for a provider, which the local stack's process manager also runs in the
    foreground (`serve_forever`)."""

    def describe(self) -> str:
        """One line on where it listens, printed once it serves."""
        raise NotImplementedError

    def serve_forever(self) -> None:
        """Run in the foreground until SIGTERM/SIGINT (what honcho sends)."""
        stopped = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stopped.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        print(self.describe(), flush=True)
        try:
            while not stopped.wait(0.5):  # a timed wait keeps signal delivery prompt
                pass
        finally:
            self.stop()
