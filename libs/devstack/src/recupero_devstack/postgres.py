"""A real PostgreSQL server from Debian's binaries, for dev and tests.

Layout under ``data_dir``: ``pgdata/`` (the cluster), ``sock/`` (Unix socket,
kept out of /var/run so no root-owned dirs are needed) and ``postgres.log``.

PostgreSQL refuses to run as root. When we are root (CI, sandboxes) every
server and initdb process is run as the Debian ``postgres`` system user via
``setpriv``, which exec()s in place: the pid we hold *is* the postmaster, so
signals from stop() or a process manager reach it directly (runuser forks).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import IO

import asyncpg

from recupero_devstack._util import Managed, log_excerpt, run_async

__all__ = ["PostgresServer", "find_pg_bin"]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SUPERUSER = "postgres"
# sun_path is 108 bytes; "/.s.PGSQL.NNNNN" takes 15 of them.
_MAX_SOCK_DIR = 90


def find_pg_bin() -> Path:
    """bin dir of the highest PostgreSQL major under /usr/lib/postgresql."""
    candidates: list[tuple[int, Path]] = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        if re.fullmatch(r"\d+", d.parent.name) and (d / "postgres").is_file():
            candidates.append((int(d.parent.name), d))
    if not candidates:
        raise RuntimeError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
            "apt-get install postgresql"
        )
    return max(candidates)[1]


def _can_search(path: Path, uid: int, gids: set[int]) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


class PostgresServer(Managed):
    """One PostgreSQL cluster with trust auth on 127.0.0.1, superuser ``postgres``."""

    def __init__(self, data_dir: Path, port: int, *, fast: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        # fast=True trades crash safety for speed (tests); the dev stack keeps data.
        self.fast = fast
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    # -- paths and URLs -------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "sock"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def dsn_for(self, database: str = "postgres") -> str:
        """libpq/asyncpg DSN (asyncpg does not accept the +asyncpg scheme)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # -- running as the postgres user -----------------------------------------

    def _user_prefix(self) -> list[str]:
        """argv prefix that drops root to the postgres user; empty if not root."""
        if os.geteuid() != 0:
            return []
        try:
            pw = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise RuntimeError(
                "running as root but there is no 'postgres' system user "
                "(it comes with Debian's postgresql package)"
            ) from None
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RuntimeError("setpriv (util-linux) is needed to run PostgreSQL as non-root")
        prefix = [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]
        gids = {pw.pw_gid, *os.getgrouplist(SUPERUSER, pw.pw_gid)}
        if not all(_can_search(p, pw.pw_uid, gids) for p in self.data_dir.parents):
            # e.g. pytest's /tmp/pytest-of-root is 0700: keep only the right to
            # traverse directories rather than loosen the caller's permissions.
            prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        return [*prefix, "--"]

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if len(str(self.socket_dir)) > _MAX_SOCK_DIR:
            raise RuntimeError(
                f"socket dir {self.socket_dir} is too long for a Unix socket path; "
                "use a shorter data_dir"
            )
        if os.geteuid() == 0:
            pw = pwd.getpwnam(SUPERUSER)
            # The postmaster insists on owning its data dir (and 0700/0750 mode).
            for root, dirs, files in os.walk(self.data_dir):
                os.chown(root, pw.pw_uid, pw.pw_gid)
                for name in (*dirs, *files):
                    os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)

    # -- lifecycle --------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def initdb(self) -> None:
        """Create the cluster if ``pgdata`` is not one yet (trust auth, UTF8)."""
        self._prepare_dirs()
        if self.initialized:
            return
        argv = [
            *self._user_prefix(),
            str(find_pg_bin() / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            # C collation: identical sort order on every machine, no locale packages.
            "--locale=C",
            "--no-instructions",
        ]
        if self.fast:
            argv.append("--no-sync")
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {proc.returncode}): {' '.join(argv)}\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )

    def command(self) -> list[str]:
        """The argv that runs the postmaster in the foreground (for honcho / execvp)."""
        self._prepare_dirs()
        argv = [
            *self._user_prefix(),
            str(find_pg_bin() / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
        ]
        if self.fast:
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                argv += ["-c", setting]
        return argv

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """initdb if needed, start the server, return once it accepts a connection."""
        if self.running:
            return
        self.initdb()
        argv = self.command()
        self._log_fh = self.log_path.open("ab")
        log_start = self._log_fh.tell()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C for pytest must not kill it mid-test
        )
        # Own session means no terminal signal reaches it: make sure a test run
        # that ends without teardown does not leave it behind.
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        last_error = "no attempt"
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._cleanup()
                raise RuntimeError(
                    f"PostgreSQL exited with code {code} while starting; "
                    f"log:\n{log_excerpt(self.log_path, log_start)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"PostgreSQL on 127.0.0.1:{self.port} did not accept connections within "
                    f"{timeout_s:.0f}s (last error: {last_error}); "
                    f"log:\n{log_excerpt(self.log_path, log_start)}"
                )
            try:
                run_async(self._select_one)
                return
            except Exception as exc:
                # Refused, or "the database system is starting up": keep waiting.
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)

    async def _select_one(self) -> None:
        conn = await asyncpg.connect(self.dsn_for(), timeout=2)
        try:
            await conn.execute("select 1")
        finally:
            await conn.close()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Fast shutdown (SIGINT): a clean stop even with clients still connected."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # SIGTERM is "smart" shutdown, which waits for every client to leave.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        atexit.unregister(self.stop)
        self._proc = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` if it does not exist (server must be running)."""
        run_async(lambda: self._ensure_database(name))

    async def _ensure_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.dsn_for(), timeout=10)
        try:
            exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
            if exists:
                return
            ident = '"' + name.replace('"', '""') + '"'
            # Another test worker may create it between the check and here: fine.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"create database {ident}")
        finally:
            await conn.close()
