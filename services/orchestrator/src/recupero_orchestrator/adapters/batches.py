"""Set-based reads and writes for many debtors at once (planning the day, firing a claimed batch):
a chunk of cases with everything the planner and the contact policy need, in one query per table;
new schedule rows written with COPY and one `INSERT ... SELECT`; what became of due actions, the
decisions, the contacts and the events in one statement each."""

import json
import operator
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

Row = dict[str, Any]
DebtorKey = tuple[str, str]

# The chunk's debtors, as a relation the per-table reads join against. The keys go as one JSON
# text rather than as two arrays: asyncpg checks every element of an array parameter in Python,
# and the seven reads checked each key fourteen times (a quarter of reading the facts).
_CHUNK = (
    "(SELECT key->>0 AS tenant_id, key->>1 AS debtor_id"
    " FROM jsonb_array_elements($1::text::jsonb) AS key) AS chunk"
)

SCHEDULE_COLUMNS = (
    "action_id",
    "tenant_id",
    "debtor_id",
    "action_key",
    "kind",
    "strategy",
    "step_id",
    "round",
    "attempt",
    "channel",
    "template",
    "due_at",
    "expires_at",
    "planned_at",
    "status",
    "status_reason",
    "happened_at",
)


# The columns of each table that planning and firing read (`planning.state_from_facts`,
# `planning.contact_context_from_facts`, `planning._record`; firing also the action's id): a
# million debtors' rows are decoded, and the rest of each row would be decoded for nothing.
_FACT_COLUMNS = {
    "actions": (
        "scheduled_actions",
        "action_id, action_key, kind, status, delivery, due_at, step_id, round, attempt,"
        " channel, happened_at",
        "t.action_key IS NOT NULL",
    ),
    "promises": (
        "promises",
        "promise_id, amount_minor, currency, promised_on, registered_at, status",
        "t.status <> 'replaced'",
    ),
    "payments": ("payments", "amount_minor, currency, received_at", "TRUE"),
    "opt_outs": ("opt_outs", "channel", "TRUE"),
    "authorised": ("authorised_channels", "channel", "TRUE"),
    "holds": ("holds", "kind, since, until", "TRUE"),
    "contacts": ("contact_history", "contacted_at, channel, conversation", "TRUE"),
}


async def debtor_facts(
    connection: Any, keys: Sequence[DebtorKey]
) -> dict[str, dict[DebtorKey, list[Row]]]:
    """Strategy actions, promises, payments, opt-outs, authorisations, holds and contacts of the
    chunk's debtors, grouped by debtor. The actions are dicts (firing updates them as it judges
    them); the other rows are read-only records, indexed by column name all the same."""
    chunk = json.dumps(keys)  # [[tenant, debtor], ...]
    facts: dict[str, dict[DebtorKey, list[Row]]] = {}
    for name, (table, columns, where) in _FACT_COLUMNS.items():
        grouped: dict[DebtorKey, list[Any]] = defaultdict(list)
        rows = await connection.fetch(
            f"SELECT t.tenant_id, t.debtor_id, {columns} FROM {_CHUNK}"
            f" JOIN orchestrator.{table} t"
            f" ON t.tenant_id = chunk.tenant_id AND t.debtor_id = chunk.debtor_id WHERE {where}",
            chunk,
        )
        for row in rows:
            grouped[row[0], row[1]].append(dict(row) if name == "actions" else row)
        facts[name] = grouped
    return facts


async def write_plan(
    connection: Any,
    schedule: list[tuple[Any, ...]],
    statuses: list[tuple[str, str, str, str]],
) -> int:
    """New schedule rows (a key already stored is left alone, as `propose` does for a pending
    action) and the cases whose plan status changed. Returns rows inserted."""
    inserted = 0
    if schedule:
        await connection.execute(
            "CREATE TEMP TABLE day_plan_actions"
            " (LIKE orchestrator.scheduled_actions INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await connection.copy_records_to_table(
            "day_plan_actions", records=schedule, columns=SCHEDULE_COLUMNS
        )
        columns = ", ".join(SCHEDULE_COLUMNS)
        status = await connection.execute(
            f"INSERT INTO orchestrator.scheduled_actions ({columns})"
            f" SELECT {columns} FROM day_plan_actions"
            " ON CONFLICT (tenant_id, debtor_id, action_key) WHERE action_key IS NOT NULL"
            " DO NOTHING"
        )
        inserted = int(status.split()[-1])
    if statuses:
        await connection.execute(
            "CREATE TEMP TABLE day_plan_statuses (tenant_id text, debtor_id text,"
            " plan_status text, plan_reason text) ON COMMIT DROP"
        )
        await connection.copy_records_to_table("day_plan_statuses", records=statuses)
        await connection.execute(
            "UPDATE orchestrator.cases c SET plan_status = s.plan_status,"
            " plan_reason = s.plan_reason FROM day_plan_statuses s"
            " WHERE c.tenant_id = s.tenant_id AND c.debtor_id = s.debtor_id"
        )
    return inserted


async def claim_due(connection: Any, now: datetime, limit: int) -> list[Row]:
    """Due actions with their case's status, oldest first; the rows are locked so another
    replica skips them. The case is locked too, without waiting: consumers lock the case before
    its actions, so the scheduler never waits on a lock a consumer holds. The rest of the case is
    read once for the batch (`cases_of`); the actions as asyncpg records, not SQLAlchemy rows,
    which cost more than the rest of the claim."""
    rows = await connection.fetch(
        "SELECT a.*, c.status AS case_status"
        " FROM orchestrator.scheduled_actions a JOIN orchestrator.cases c"
        " ON c.tenant_id = a.tenant_id AND c.debtor_id = a.debtor_id"
        " WHERE a.status = 'pending' AND a.due_at <= $1 ORDER BY a.due_at LIMIT $2"
        " FOR UPDATE OF a, c SKIP LOCKED",
        now,
        limit,
    )
    return [dict(row) for row in rows]


async def analyze_schedule(connection: Any) -> None:
    """Fresh statistics for the schedule once the day is planned, rather than when autovacuum
    gets to it. The day's plan writes most of the pending schedule: with the statistics of
    before, PostgreSQL took the pending-only index for nearly empty and walked all of it to find
    one debtor's pending actions (a payment's cancellation: 65 ms a payment with 200,000 cases,
    and more with more), until autovacuum analyzed the table."""
    await connection.execute("ANALYZE orchestrator.scheduled_actions")


async def cases_of(connection: Any, keys: Sequence[DebtorKey]) -> dict[DebtorKey, Row]:
    """The cases of the batch's debtors (already locked by the claim)."""
    rows = await connection.fetch(
        "SELECT c.* FROM unnest($1::text[], $2::text[]) AS batch(tenant_id, debtor_id)"
        " JOIN orchestrator.cases c"
        " ON c.tenant_id = batch.tenant_id AND c.debtor_id = batch.debtor_id",
        [key[0] for key in keys],
        [key[1] for key in keys],
    )
    return {(row["tenant_id"], row["debtor_id"]): dict(row) for row in rows}


async def settle_actions(
    connection: Any, settled: Sequence[tuple[UUID, str, str | None]], now: datetime
) -> None:
    """(action id, status, reason): what `OrchestratorRepository.settle_action` records, for many
    actions at once."""
    if not settled:
        return
    await connection.execute(
        "UPDATE orchestrator.scheduled_actions a SET status = s.status,"
        " status_reason = s.reason, happened_at = $4,"
        " fired_at = CASE WHEN s.status = 'fired' THEN $4 ELSE a.fired_at END,"
        " cancelled_at = CASE WHEN s.status = 'cancelled' THEN $4 ELSE a.cancelled_at END"
        " FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s(action_id, status, reason)"
        " WHERE a.action_id = s.action_id",
        [row[0] for row in settled],
        [row[1] for row in settled],
        [row[2] for row in settled],
        now,
    )


async def reschedule_actions(connection: Any, moved: Sequence[tuple[UUID, datetime]]) -> None:
    if not moved:
        return
    await connection.execute(
        "UPDATE orchestrator.scheduled_actions a SET due_at = s.due_at"
        " FROM unnest($1::uuid[], $2::timestamptz[]) AS s(action_id, due_at)"
        " WHERE a.action_id = s.action_id",
        [row[0] for row in moved],
        [row[1] for row in moved],
    )


_DECISION_COLUMNS = (
    ("tenant_id", "text"),
    ("debtor_id", "text"),
    ("action_id", "uuid"),
    ("action_key", "text"),
    ("channel", "text"),
    ("verdict", "text"),
    ("rule_id", "text"),
    ("reason", "text"),
    ("trail", "text"),
    ("policy_id", "text"),
    ("requested_at", "timestamptz"),
    ("moved_to", "timestamptz"),
    ("decided_at", "timestamptz"),
)

_TRAIL = [name for name, _ in _DECISION_COLUMNS].index("trail")
# A decision's values in column order, picked by C code rather than a generator a decision.
_BEFORE_TRAIL = operator.itemgetter(*(name for name, _ in _DECISION_COLUMNS[:_TRAIL]))
_AFTER_TRAIL = operator.itemgetter(*(name for name, _ in _DECISION_COLUMNS[_TRAIL + 1 :]))


async def insert_decisions(connection: Any, decisions: Sequence[Row]) -> None:
    """Contact decisions (`planning.decision_values`), each with a new id. They go in with COPY
    through a table of the transaction, as new schedule rows do (`write_plan`): asyncpg checks
    every element of an array parameter in Python, which cost twice the rest of the insert."""
    if not decisions:
        return
    names = ", ".join(name for name, _ in _DECISION_COLUMNS)
    selected = ", ".join(
        "d.trail::jsonb" if name == "trail" else f"d.{name}" for name, _ in _DECISION_COLUMNS
    )
    await connection.execute(
        "CREATE TEMP TABLE new_decisions ("
        + ", ".join(f"{name} {kind}" for name, kind in _DECISION_COLUMNS)
        + ") ON COMMIT DROP"
    )
    await connection.copy_records_to_table(
        "new_decisions",
        records=[
            (*_BEFORE_TRAIL(decision), json.dumps(decision["trail"]), *_AFTER_TRAIL(decision))
            for decision in decisions
        ],
    )
    await connection.execute(
        f"INSERT INTO orchestrator.contact_decisions (decision_id, {names})"
        f" SELECT gen_random_uuid(), {selected} FROM new_decisions d"
        # Only decisions about stored actions (a concurrent replan may have won a planned key).
        " WHERE EXISTS (SELECT 1 FROM orchestrator.scheduled_actions a"
        " WHERE a.action_id = d.action_id)"
    )


async def insert_contacts(
    connection: Any, contacts: Sequence[tuple[str, str, str, UUID]], at: datetime
) -> None:
    """(tenant, debtor, channel, action id) contacted at `at`: the history the caps count."""
    if not contacts:
        return
    await connection.execute(
        "INSERT INTO orchestrator.contact_history"
        " (contact_id, tenant_id, debtor_id, channel, contacted_at, conversation, action_id)"
        " SELECT gen_random_uuid(), c.tenant_id, c.debtor_id, c.channel, $5, false, c.action_id"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[])"
        " AS c(tenant_id, debtor_id, channel, action_id)",
        *([row[n] for row in contacts] for n in range(4)),
        at,
    )
