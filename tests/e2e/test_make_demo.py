"""`make demo`, the README's first command, run as a newcomer runs it: the whole local stack
(Kafka, PostgreSQL, the SMTP sink, the WhatsApp and Twilio peers, the six services) started by
`make`, the 1,000-debtor demo, then `make down`. The stack gets a data directory and ports of its
own (`recupero_devstack.layout`), so a developer's running stack is left alone."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from recupero_devstack._util import port_open
from recupero_devstack.layout import USUAL_PORTS

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("whatsapp", "sms", "email", "letter", "ivr")


def _free_offset() -> int:
    """An offset that puts every port of the stack on a free port below the ephemeral range."""
    for offset in range(10_000, 22_000, 500):
        # The same check `stack.py up` makes before it starts anything.
        if not any(port_open(port + offset) for port in USUAL_PORTS.values()):
            return offset
    raise RuntimeError("no free range of ports for a second local stack")


@pytest.mark.timeout(900)
def test_make_demo_reaches_every_channel(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "RECUPERO_STACK_DIR": str(tmp_path / "var"),
        "RECUPERO_STACK_PORT_OFFSET": str(_free_offset()),
    }
    try:
        demo = subprocess.run(
            ["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=840
        )
    finally:
        subprocess.run(["make", "down"], cwd=ROOT, env=env, capture_output=True, timeout=60)
    shown = demo.stdout + demo.stderr
    log = tmp_path / "var" / "log" / "stack.log"
    tail = log.read_text(errors="replace")[-6000:] if log.exists() else "(no stack log)"
    assert demo.returncode == 0, f"{shown}\n--- stack log, last lines ---\n{tail}"
    assert "Recupero demo finished" in shown
    imported = re.search(r"debtors imported\s+(\d+)", shown)
    assert imported and int(imported.group(1)) >= 1000, shown
    for channel in CHANNELS:
        line = re.search(rf"^\s+{channel}\s+sent\s+(\d+),\s+(\d+) ", shown, re.MULTILINE)
        assert line, f"no line for {channel}:\n{shown}"
        # Six written-off debtors each; a portfolio debtor's reminder may land in the same window.
        assert int(line.group(1)) >= 6 and int(line.group(2)) >= 6, line.group(0)
