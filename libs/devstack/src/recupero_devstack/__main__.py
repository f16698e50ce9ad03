"""``python -m recupero_devstack <server>``: one real dependency in the foreground.

Meant for a process manager (honcho Procfile): kafka and postgres prepare their
data dir and then exec() the server, so the manager's signals reach the server
itself and its output is the process output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from recupero_devstack.kafka import KafkaBroker, ensure_kafka_jars
from recupero_devstack.postgres import PostgresServer
from recupero_devstack.providers import twilio, whatsapp
from recupero_devstack.smtp import SmtpSink


def _exec(argv: list[str]) -> None:
    print(f"recupero_devstack: exec {' '.join(argv)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def _kafka(args: argparse.Namespace) -> None:
    broker = KafkaBroker(args.data, args.port, args.controller_port, args.cache)
    broker.format()
    _exec(broker.command())


def _postgres(args: argparse.Namespace) -> None:
    server = PostgresServer(args.data, args.port, fast=args.fast)
    server.initdb()
    _exec(server.command())


def _smtp(args: argparse.Namespace) -> None:
    SmtpSink(args.mailbox, args.port, args.http_port).serve_forever()


def _fetch_kafka(args: argparse.Namespace) -> None:
    print(ensure_kafka_jars(args.cache))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recupero_devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("kafka", help="fetch jars, format storage, exec a KRaft broker")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--controller-port", type=int, default=9093)
    p.add_argument("--data", type=Path, default=Path("var/kafka"))
    p.add_argument("--cache", type=Path, default=Path(".cache"))
    p.set_defaults(func=_kafka)

    p = sub.add_parser("postgres", help="initdb if needed, exec the postmaster")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--data", type=Path, default=Path("var/postgres"))
    p.add_argument("--fast", action="store_true", help="fsync off: faster, not crash-safe")
    p.set_defaults(func=_postgres)

    p = sub.add_parser("smtp", help="SMTP sink with a JSON API over the mailbox")
    p.add_argument("--port", type=int, default=2525)
    p.add_argument("--http-port", type=int, default=8025)
    p.add_argument("--mailbox", type=Path, default=Path("var/mail"))
    p.set_defaults(func=_smtp)

    p = sub.add_parser("whatsapp", help="local WhatsApp Cloud API that sends signed webhooks")
    whatsapp.add_arguments(p)
    p.set_defaults(func=whatsapp.serve)

    p = sub.add_parser("twilio", help="local Twilio Messages and Calls API, signed callbacks")
    twilio.add_arguments(p)
    p.set_defaults(func=twilio.serve)

    p = sub.add_parser("fetch-kafka", help="only download the Kafka jars into the cache")
    p.add_argument("--cache", type=Path, default=Path(".cache"))
    p.set_defaults(func=_fetch_kafka)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
