"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars.

Version choice: Apache Kafka 4.1.2 (``org.apache.kafka:kafka_2.13:4.1.2``).
Kafka 4.0 removed old protocol versions, but 4.0 restored Metadata v0-3 for old
clients (KAFKA-18648) and 4.1 restored JoinGroup v0-1; aiokafka 0.14 (which
speaks those old versions) is proven against 4.1.2 by
``tests/integration/test_devstack.py``: idempotent producer, consumer group
join/sync, manual offset commit and a second group member that sees nothing
after the commit. So no fall back to 3.9.x is needed.

There is no Docker and no Apache download site here, only Maven Central, so
the broker's runtime classpath is assembled with ``mvn dependency:copy-dependencies``
from a one-dependency pom (plus the log4j2 SLF4J binding, without which Kafka
logs nothing at all).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from recupero_devstack._util import Managed, free_port, log_excerpt, port_open, run_async

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "ensure_kafka_jars",
    "free_port",
]

KAFKA_VERSION = "4.1.2"
SCALA_VERSION = "2.13"
# Kafka 4.1.2 brings log4j-api/core 2.25.3 and slf4j-api 1.7.36; the SLF4J 1.x
# binding must match log4j-core exactly.
LOG4J_VERSION = "2.25.3"

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
NODE_ID = 1

JVM_FLAGS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    # C1 only: the broker is up in a few seconds instead of warming up C2.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
]

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.recupero.devstack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

# Console only: `start()` sends stdout to data_dir/kafka.log, and a process
# manager wants the broker's output on stdout anyway. AbstractConfig at WARN:
# its three ~330-line config dumps per start drown everything else
# (data_dir/server.properties holds the same information).
_LOG4J2 = """status = warn
name = recupero-devstack-kafka
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""

_MARKER = ".complete"


def _kafka_home(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def _lib_complete(lib_dir: Path) -> bool:
    marker = lib_dir / _MARKER
    if not marker.is_file():
        return False
    # The marker lists the jars; a half-deleted cache must be fetched again.
    names = [n for n in marker.read_text().splitlines() if n]
    return bool(names) and all((lib_dir / n).is_file() for n in names)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_kafka_jars(cache_dir: Path) -> Path:
    """Fetch the broker's runtime jars into ``cache_dir/kafka-<ver>/lib`` once.

    Idempotent; concurrent callers (pytest-xdist workers, honcho and a test run)
    serialise on a flock so only one runs Maven. Returns the lib dir.
    """
    cache_dir = cache_dir.resolve()
    home = _kafka_home(cache_dir)
    lib_dir = home / "lib"
    if _lib_complete(lib_dir):
        return lib_dir
    with _file_lock(cache_dir / f"kafka-{KAFKA_VERSION}.lock"):
        if _lib_complete(lib_dir):  # another process finished while we waited
            return lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(
                "Maven (`mvn`) is needed to fetch the Kafka jars: apt-get install maven"
            )
        home.mkdir(parents=True, exist_ok=True)
        pom = home / "pom.xml"
        pom.write_text(_POM.format(kafka=KAFKA_VERSION, scala=SCALA_VERSION, log4j=LOG4J_VERSION))
        # Fetch into a scratch dir and swap it in, so lib/ is never half-filled.
        tmp_lib = home / "lib.partial"
        shutil.rmtree(tmp_lib, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp_lib}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"fetching Kafka {KAFKA_VERSION} jars failed ({' '.join(cmd)}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        jars = sorted(p.name for p in tmp_lib.glob("*.jar"))
        if f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar" not in jars:
            raise RuntimeError(f"Maven succeeded but {tmp_lib} has no Kafka jar: {jars}")
        (tmp_lib / _MARKER).write_text("\n".join(jars) + "\n")
        shutil.rmtree(lib_dir, ignore_errors=True)
        tmp_lib.rename(lib_dir)
        return lib_dir


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ is needed for Kafka: apt-get install openjdk-17-jre-headless")
    return java


def _cluster_id() -> str:
    # What `kafka-storage.sh random-uuid` prints: 22 chars of base64url. Like Kafka's own
    # Uuid.randomUuid(), never one starting with "-": StorageTool's argument parser would take it
    # for an option and fail (one format in 64 did, before this loop).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


async def _metadata_ready(bootstrap: str, timeout_s: float) -> bool:
    """True once the broker answers a Metadata request listing itself."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        client_id="recupero-devstack-probe",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    brokers = cluster.get("brokers") or []
    return any(b.get("node_id") == NODE_ID for b in brokers)


class KafkaBroker(Managed):
    """One KRaft node acting as broker and controller, for dev and tests."""

    def __init__(self, data_dir: Path, port: int, controller_port: int, cache_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self.cache_dir = cache_dir.resolve()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "data"

    @property
    def _properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log4j_path(self) -> Path:
        return self.data_dir / "log4j2.properties"

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            # Static voters: with these set, StorageTool format must not get --standalone.
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            "num.partitions": "6",
            "auto.create.topics.enable": "true",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Internal topics default to RF 3 and 50 partitions; one node can't host that.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests create groups constantly; the 3 s default delay only slows them.
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self._properties_path.write_text(self._server_properties())
        self._log4j_path.write_text(_LOG4J2)

    def _java_argv(self, main_class: str, *args: str) -> list[str]:
        lib_dir = ensure_kafka_jars(self.cache_dir)
        return [
            _java(),
            *JVM_FLAGS,
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={self._log4j_path}",
            "-cp",
            f"{lib_dir}/*",
            main_class,
            *args,
        ]

    def command(self) -> list[str]:
        """The argv that runs the broker in the foreground (for honcho / execvp).

        Writes server.properties and the log4j2 config, and fetches the jars if needed.
        """
        self._write_config()
        return self._java_argv("kafka.Kafka", str(self._properties_path))

    @property
    def formatted(self) -> bool:
        return (self._log_dirs / "meta.properties").is_file()

    def format(self) -> None:
        """Format the KRaft storage once; a formatted data dir keeps its topics."""
        self._write_config()
        if self.formatted:
            return
        argv = self._java_argv(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(self._properties_path),
        )
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"kafka StorageTool format failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the broker and return once it answers Metadata requests."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.format()
        argv = self.command()
        self._log_fh = self.log_path.open("ab")
        log_start = self._log_fh.tell()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C aimed at pytest must not kill the broker
            # mid-test; stop() ends it.
            start_new_session=True,
        )
        # Own session means no terminal signal reaches it: make sure a test run
        # that ends without teardown does not leave it behind.
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._cleanup()
                raise RuntimeError(
                    f"Kafka exited with code {code} while starting; "
                    f"log:\n{log_excerpt(self.log_path, log_start)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise TimeoutError(
                    f"Kafka on {self.bootstrap} did not answer Metadata within {timeout_s:.0f}s; "
                    f"log:\n{log_excerpt(self.log_path, log_start)}"
                )
            # Cheap port check first: aiokafka logs an ERROR per refused connection.
            probe_timeout = min(5.0, max(remaining, 0.5))
            if port_open(self.port) and run_async(
                functools.partial(_metadata_ready, self.bootstrap, probe_timeout)
            ):
                return
            time.sleep(0.2)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL if it takes too long."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
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
