"""Recording the channels a debtor authorised (through the API, or with an import) and revoking
them. The contact policy reads the authorised channels when it judges each action at its time, so
a change takes effect for every pending action from the next one judged."""

from collections.abc import Iterable
from datetime import datetime

import structlog

from recupero_events import DebtImported
from recupero_orchestrator.adapters.repository import OrchestratorRepository
from recupero_orchestrator.domain.authorisations import (
    AuthorisationChange,
    AuthorisationSource,
    import_changes,
    imported_channels,
)
from recupero_orchestrator.domain.channels import ContactChannel
from recupero_runtime.db import Work

log = structlog.get_logger()

Uow = Work[OrchestratorRepository]


async def authorise(
    uow: Uow,
    tenant_id: str,
    debtor_id: str,
    channels: Iterable[ContactChannel],
    authorised_at: datetime,
    evidence: str,
    source: AuthorisationSource,
    now: datetime,
) -> None:
    """Record that the debtor authorised these channels at `authorised_at`, with the evidence."""
    channels = list(channels)
    if not channels:
        return
    # The case first, as every consumer and the scheduler do: a change waits for a debtor's
    # action being judged right now, and the next judgement sees it.
    await uow.repo.case_for_update(tenant_id, debtor_id)
    for channel in channels:
        values = {
            "tenant_id": tenant_id,
            "debtor_id": debtor_id,
            "channel": channel.value,
            "evidence": evidence,
            "source": source.value,
            "recorded_at": now,
        }
        await uow.repo.authorise_channel({**values, "authorised_at": authorised_at})
        await uow.repo.log_authorisation_change(
            {
                **values,
                "change": AuthorisationChange.AUTHORISED.value,
                "effective_at": authorised_at,
            }
        )


async def revoke(
    uow: Uow,
    tenant_id: str,
    debtor_id: str,
    channel: ContactChannel,
    revoked_at: datetime,
    evidence: str,
    source: AuthorisationSource,
    now: datetime,
) -> bool:
    """Withdraw one channel. Logged even when it was not authorised: a later import that lists it
    must not grant what the debtor refused. Returns whether it was authorised."""
    await uow.repo.case_for_update(tenant_id, debtor_id)
    was_authorised = await uow.repo.revoke_channel(tenant_id, debtor_id, channel.value)
    await uow.repo.log_authorisation_change(
        {
            "tenant_id": tenant_id,
            "debtor_id": debtor_id,
            "channel": channel.value,
            "change": AuthorisationChange.REVOKED.value,
            "source": source.value,
            "evidence": evidence,
            "effective_at": revoked_at,
            "recorded_at": now,
        }
    )
    return was_authorised


async def record_imported(uow: Uow, event: DebtImported, now: datetime) -> None:
    """Apply the authorised channels an import carries as a custom attribute (see
    `domain.authorisations`); an import without that attribute changes nothing."""
    imported = imported_channels(event.attributes.custom if event.attributes else {})
    if imported is None:
        return
    tenant_id, debtor_id = event.tenant_id, event.debtor_id
    if imported.unknown:
        log.warning(
            "authorised_channels_unknown",
            debtor_id=debtor_id,
            attribute=imported.attribute,
            unknown=list(imported.unknown),
        )
    current = {
        ContactChannel(row["channel"]): AuthorisationSource(row["source"])
        for row in await uow.repo.authorisations_of(tenant_id, debtor_id)
    }
    revoked = [
        ContactChannel(channel)
        for channel in await uow.repo.channels_revoked_through_api(tenant_id, debtor_id)
    ]
    changes = import_changes(imported.channels, current, revoked)
    evidence = f"import {event.import_id}, attribute {imported.attribute!r}"
    await authorise(
        uow,
        tenant_id,
        debtor_id,
        sorted(changes.grant),
        event.as_of,
        evidence,
        AuthorisationSource.IMPORT,
        now,
    )
    for channel in sorted(changes.revoke):
        await revoke(
            uow,
            tenant_id,
            debtor_id,
            channel,
            event.as_of,
            evidence,
            AuthorisationSource.IMPORT,
            now,
        )
    if changes.kept_revoked:
        log.info(
            "authorised_channels_kept_revoked",
            debtor_id=debtor_id,
            channels=sorted(channel.value for channel in changes.kept_revoked),
        )
