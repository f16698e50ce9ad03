"""The notifier as it runs, inside a test's event loop: its HTTP server (the providers'
callbacks and webhooks) and its Kafka consumer."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from recupero_notifier.bootstrap import bootstrap
from recupero_notifier.settings import NotifierSettings

# The default WhatsApp Business account the tests' notifiers and local peers share.
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
PHONE_NUMBER_ID = "106540352242922"


@asynccontextmanager
async def serving(settings: NotifierSettings, timeout_s: float = 60) -> AsyncIterator[str]:
    """Serve until the block ends; yields the notifier's public URL."""
    _, app = bootstrap(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.http_port, log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(timeout_s):
        while not server.started:
            assert not task.done(), "the notifier did not start"
            await asyncio.sleep(0.05)
    try:
        yield settings.public_url
    finally:
        server.should_exit = True
        await task
