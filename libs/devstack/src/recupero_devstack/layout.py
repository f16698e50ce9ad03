"""Where the local stack (`make up`, `make demo`) keeps its data and which ports it listens on.

By default: `var/` at the repository's root and the usual ports (Kafka 9092, PostgreSQL 5432, the
services 8000-8005, ...). Two variables put a second stack beside the first, as the demo's test
does: `RECUPERO_STACK_DIR`, another data directory, and `RECUPERO_STACK_PORT_OFFSET`, a number
added to every port.
"""

import os
from dataclasses import dataclass
from pathlib import Path

USUAL_PORTS = {
    "kafka": 9092,
    "kafka-controller": 9093,
    "postgres": 5432,
    "smtp": 2525,
    "smtp-http": 8025,
    "whatsapp": 8031,
    "twilio": 8032,
    "portal-api": 8000,
    "ingest": 8001,
    "segmenter": 8002,
    "orchestrator": 8003,
    "notifier": 8004,
    "payments": 8005,
}
SERVICES = ("portal-api", "ingest", "segmenter", "orchestrator", "notifier", "payments")


@dataclass(frozen=True)
class StackLayout:
    root: Path
    var: Path
    port_offset: int = 0

    def port(self, name: str) -> int:
        return USUAL_PORTS[name] + self.port_offset

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def shown(self, path: Path) -> str:
        """`path` as a newcomer would type it: relative to the repository when it is inside."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    @property
    def log(self) -> Path:
        return self.var / "log" / "stack.log"

    @property
    def key(self) -> Path:
        """The demo tenant's API key, created by `stack.py up`."""
        return self.var / "demo-tenant.key"


def stack_layout(root: Path) -> StackLayout:
    """The layout `root`'s stack uses, from the environment (see the module's docstring)."""
    offset = os.environ.get("RECUPERO_STACK_PORT_OFFSET", "0")
    if not offset.isdigit() or max(USUAL_PORTS.values()) + int(offset) > 65535:
        highest = 65535 - max(USUAL_PORTS.values())
        raise SystemExit(
            f"RECUPERO_STACK_PORT_OFFSET={offset!r}: expected a number from 0 to {highest}"
        )
    var = os.environ.get("RECUPERO_STACK_DIR")
    return StackLayout(root, Path(var).resolve() if var else root / "var", int(offset))
