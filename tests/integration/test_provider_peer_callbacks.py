"""The provider peers' signed callbacks reach a receiver that drops kept-alive connections.

A web server closes an idle kept-alive connection when its timeout fires, and a callback written
at that moment meets a closed socket. The peer sends it again on a new connection, as HTTP clients
do; a provider's webhook is not lost to it (the peers never retry a webhook that was answered).
"""

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from recupero_devstack._util import free_port
from recupero_devstack.providers.whatsapp import WhatsAppCloudPeer, signature

pytestmark = pytest.mark.integration

APP_SECRET = "peer-test-app-secret"


class DroppingReceiver:
    """An HTTP/1.1 webhook receiver, in a thread, that answers the first request of each
    connection and resets the connection when a second one arrives on it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[bytes] = []
        self.signed: list[bool] = []
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "DroppingReceiver":
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            headers = dict(
                line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
            )
            body = await reader.readexactly(int(headers["Content-Length"]))
            if answered:
                # As a keep-alive timeout firing while the request was on its way: a reset.
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            self.bodies.append(body)
            self.signed.append(headers.get("X-Hub-Signature-256") == signature(APP_SECRET, body))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            answered += 1


@pytest.fixture
def receiver() -> Iterator[DroppingReceiver]:
    with DroppingReceiver() as running:
        yield running


def test_a_webhook_written_as_the_receiver_drops_the_connection_still_arrives_once(
    receiver: DroppingReceiver,
) -> None:
    with WhatsAppCloudPeer(
        free_port(),
        access_token="peer-test-token",
        app_secret=APP_SECRET,
        phone_number_id="106540352242922",
        verify_token="peer-test-verify",
        webhook_url=f"http://127.0.0.1:{receiver.port}/webhooks/whatsapp",
    ) as peer:
        sent = [
            peer.call(lambda text=text: peer.send_inbound("5215512345678", text))
            for text in ("hola", "BAJA", "gracias")
        ]
        answered = [callback["status_code"] for callback in peer.callbacks()]

    assert answered == [200, 200, 200]
    arrived = [
        json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        for body in receiver.bodies
    ]
    assert arrived == sent
    assert receiver.signed == [True, True, True]
    # Each webhook after the first found its kept-alive connection reset, and went again.
    assert receiver.connections == 3
