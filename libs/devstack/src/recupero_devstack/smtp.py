"""A real SMTP sink (aiosmtpd) that keeps every message, plus a tiny HTTP JSON API.

Every accepted message is written to the mailbox dir as ``<id>.eml`` (the raw
bytes as received) and ``<id>.json`` (envelope + a few headers). The HTTP API
reads the directory rather than memory, so it survives restarts and works when
another process (a test, a notifier run by honcho) filled the mailbox.

HTTP API (127.0.0.1 only, for dev and tests):
    GET    /messages        -> [{"id","mail_from","rcpt_tos","subject","message_id","received_at"}]
    GET    /messages/<id>   -> the raw message (message/rfc822)
    DELETE /messages        -> removes every message, 204
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from recupero_devstack._util import LocalServer

__all__ = ["MessageInfo", "SmtpSink", "main"]

MessageInfo = dict[str, Any]

_ID_RE = re.compile(r"[0-9]{20}-[0-9a-f]{8}")


def _header(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # malformed encoded-words: keep the raw header
        return value


class _Mailbox:
    """The on-disk store; thread-safe because every write is rename-atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def add(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> MessageInfo:
        # Time-ordered ids so a directory listing sorts in arrival order.
        msg_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        headers = BytesHeaderParser(policy=default_policy).parsebytes(raw)
        info: MessageInfo = {
            "id": msg_id,
            "mail_from": mail_from,
            "rcpt_tos": list(rcpt_tos),
            "subject": _header(headers.get("Subject")),
            "message_id": _header(headers.get("Message-ID")),
            "received_at": datetime.now(UTC).isoformat(),
        }
        self._write(self.path / f"{msg_id}.eml", raw)
        # The .json appears last: a message is listed only once complete.
        self._write(self.path / f"{msg_id}.json", json.dumps(info).encode())
        return info

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def list(self) -> list[MessageInfo]:
        out: list[MessageInfo] = []
        for meta in sorted(self.path.glob("*.json")):
            try:
                out.append(json.loads(meta.read_text()))
            except (OSError, ValueError):
                continue  # deleted concurrently by a DELETE
        return out

    def raw(self, msg_id: str) -> bytes | None:
        if not _ID_RE.fullmatch(msg_id):
            return None
        try:
            return (self.path / f"{msg_id}.eml").read_bytes()
        except OSError:
            return None

    def clear(self) -> None:
        for p in [*self.path.glob("*.json"), *self.path.glob("*.eml")]:
            p.unlink(missing_ok=True)


class _Handler:
    """aiosmtpd handler: accept everything, keep everything."""

    def __init__(self, mailbox: _Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        self.mailbox.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


def _http_handler(mailbox: _Mailbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "recupero-smtp-sink/1"

        def _send(self, code: int, body: bytes = b"", ctype: str = "application/json") -> None:
            self.send_response(code)
            if body or code != 204:
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/messages":
                self._send(200, json.dumps(mailbox.list()).encode())
            elif path.startswith("/messages/"):
                raw = mailbox.raw(path.removeprefix("/messages/"))
                if raw is None:
                    self._send(404, b'{"error":"not found"}')
                else:
                    self._send(200, raw, "message/rfc822")
            else:
                self._send(404, b'{"error":"not found"}')

        def do_DELETE(self) -> None:
            if self.path.split("?", 1)[0].rstrip("/") == "/messages":
                mailbox.clear()
                self._send(204)
            else:
                self._send(404, b'{"error":"not found"}')

        def log_message(self, format: str, *args: Any) -> None:
            pass  # test output stays readable; the mailbox itself is the record

    return Handler


class SmtpSink(LocalServer):
    """SMTP on 127.0.0.1:smtp_port, JSON API on 127.0.0.1:http_port."""

    def __init__(self, mailbox: Path, smtp_port: int, http_port: int) -> None:
        self.mailbox_dir = mailbox.resolve()
        self.smtp_port = smtp_port
        self.http_port = http_port
        self._mailbox = _Mailbox(self.mailbox_dir)
        self._controller: Controller | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def messages(self) -> list[MessageInfo]:
        """Same list as GET /messages, without HTTP."""
        return self._mailbox.list()

    def raw_message(self, msg_id: str) -> bytes | None:
        return self._mailbox.raw(msg_id)

    def clear(self) -> None:
        self._mailbox.clear()

    def start(self) -> None:
        """Start both servers in background threads (returns once they listen)."""
        if self._controller is not None:
            return
        controller = Controller(
            _Handler(self._mailbox),
            hostname="127.0.0.1",
            port=self.smtp_port,
            enable_SMTPUTF8=True,
        )
        controller.start()  # blocks until the SMTP server answers its own probe
        self._controller = controller
        try:
            self._http = ThreadingHTTPServer(
                ("127.0.0.1", self.http_port), _http_handler(self._mailbox)
            )
        except OSError:
            self.stop()
            raise
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, name="smtp-sink-http", daemon=True
        )
        self._http_thread.start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(5)
            self._http_thread = None
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def describe(self) -> str:
        return (
            f"smtp sink: smtp://127.0.0.1:{self.smtp_port} api {self.api_url}/messages "
            f"mailbox {self.mailbox_dir}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="recupero-smtp-sink", description=__doc__)
    parser.add_argument("--port", type=int, default=2525, help="SMTP port")
    parser.add_argument("--http-port", type=int, default=8025, help="JSON API port")
    parser.add_argument("--mailbox", type=Path, default=Path("var/mail"))
    args = parser.parse_args(argv)
    SmtpSink(args.mailbox, args.port, args.http_port).serve_forever()


if __name__ == "__main__":
    main()
