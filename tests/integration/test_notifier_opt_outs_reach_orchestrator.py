"""The notifier's opt-out event, as the orchestrator consumes it on a real PostgreSQL: the channel
is recorded as opted out for that debtor, even with no open case, and a plain reply is not."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import text

import recupero_orchestrator
from recupero_events import Channel, MessageStatus, MessageStatusChanged
from recupero_orchestrator import handlers
from recupero_orchestrator.bootstrap import bootstrap
from recupero_orchestrator.settings import OrchestratorSettings
from recupero_runtime.db import upgrade_schema
from tests.unit.fakes import delivered

pytestmark = pytest.mark.integration


async def test_opt_out_reply_is_recorded_for_its_channel(database_url: str) -> None:
    service, _ = bootstrap(OrchestratorSettings(database_url=database_url))
    migrations = Path(recupero_orchestrator.__file__).parent / "migrations"
    await upgrade_schema(service.engine, migrations, service.schema.name)
    handle = handlers.message_status_changed_handler(lambda: datetime.now(UTC))

    def reply(channel: Channel, text: str, opt_out: bool) -> MessageStatusChanged:
        return MessageStatusChanged(
            tenant_id="demo-bank",
            debtor_id="C-9",
            action_id=uuid4(),
            channel=channel,
            status=MessageStatus.REPLIED,
            occurred_at=datetime.now(UTC),
            detail=text,
            opt_out=opt_out,
        )

    try:
        for payload in (
            reply(Channel.WHATSAPP, "BAJA", True),
            reply(Channel.SMS, "¿Cuánto debo?", False),
        ):
            async with service.unit_of_work() as uow:
                await handle(delivered(payload), uow)
                await uow.commit()
        async with service.engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tenant_id, debtor_id, channel FROM orchestrator.opt_outs")
            )
            assert rows.all() == [("demo-bank", "C-9", "whatsapp")]
    finally:
        await service.engine.dispose()
