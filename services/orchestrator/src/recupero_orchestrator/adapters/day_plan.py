"""Set-based reads and writes for planning the day: a chunk of open cases with everything the planner
and the contact policy need, in one query per table, and the chunk's new schedule rows written
with COPY and one `INSERT ... SELECT`."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]
DebtorKey = tuple[str, str]

# The chunk's debtors, as a relation the per-table reads join against.
_CHUNK = "unnest($1::text[], $2::text[]) AS chunk(tenant_id, debtor_id)"

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
DECISION_COLUMNS = (
    "decision_id",
    "tenant_id",
    "debtor_id",
    "action_id",
    "action_key",
    "channel",
    "verdict",
    "rule_id",
    "reason",
    "requested_at",
    "decided_at",
)


async def lock_open_cases(connection: Any, after: DebtorKey, limit: int) -> list[Row]:
    """The next open cases following a strategy, in key order, locked for this transaction; a case
    a consumer holds right now is skipped (that consumer re-plans it anyway)."""
    rows = await connection.fetch(
        "SELECT * FROM orchestrator.cases"
        " WHERE (tenant_id, debtor_id) > ($1, $2) AND status = 'open'"
        " AND strategy_id IS NOT NULL"
        " ORDER BY tenant_id, debtor_id LIMIT $3 FOR UPDATE SKIP LOCKED",
        after[0],
        after[1],
        limit,
    )
    return [dict(row) for row in rows]


async def _by_debtor(
    connection: Any, sql: str, keys: Sequence[DebtorKey]
) -> dict[DebtorKey, list[Row]]:
    grouped: dict[DebtorKey, list[Row]] = defaultdict(list)
    tenants, debtors = [key[0] for key in keys], [key[1] for key in keys]
    for row in await connection.fetch(sql, tenants, debtors):
        grouped[(row["tenant_id"], row["debtor_id"])].append(dict(row))
    return grouped


async def debtor_facts(
    connection: Any, keys: Sequence[DebtorKey]
) -> dict[str, dict[DebtorKey, list[Row]]]:
    """Strategy actions, promises, payments, opt-outs, authorisations, holds and contacts of the
    chunk's debtors, grouped by debtor."""

    def join(table: str, where: str = "TRUE") -> str:
        return (
            f"SELECT t.* FROM {_CHUNK} JOIN orchestrator.{table} t"
            f" ON t.tenant_id = chunk.tenant_id AND t.debtor_id = chunk.debtor_id WHERE {where}"
        )

    return {
        "actions": await _by_debtor(
            connection, join("scheduled_actions", "t.action_key IS NOT NULL"), keys
        ),
        "promises": await _by_debtor(connection, join("promises", "t.status <> 'replaced'"), keys),
        "payments": await _by_debtor(connection, join("payments"), keys),
        "opt_outs": await _by_debtor(connection, join("opt_outs"), keys),
        "authorised": await _by_debtor(connection, join("authorised_channels"), keys),
        "holds": await _by_debtor(connection, join("holds"), keys),
        "contacts": await _by_debtor(connection, join("contact_history"), keys),
    }


async def write_plan(
    connection: Any,
    schedule: list[tuple[Any, ...]],
    decisions: list[tuple[Any, ...]],
    statuses: list[tuple[str, str, str, str]],
) -> int:
    """New schedule rows (a key already stored is left alone, as `propose` does for a pending
    action), their decisions, and the cases whose plan status changed. Returns rows inserted."""
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
    if decisions:
        await connection.execute(
            "CREATE TEMP TABLE day_plan_decisions"
            " (LIKE orchestrator.contact_decisions INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await connection.execute("ALTER TABLE day_plan_decisions ALTER trail DROP NOT NULL")
        await connection.copy_records_to_table(
            "day_plan_decisions", records=decisions, columns=DECISION_COLUMNS
        )
        columns = ", ".join(DECISION_COLUMNS)
        # Only decisions about actions this plan stored (a concurrent replan may have won a key).
        await connection.execute(
            f"INSERT INTO orchestrator.contact_decisions ({columns}, trail)"
            f" SELECT {', '.join('d.' + c for c in DECISION_COLUMNS)}, '[]'::jsonb"
            " FROM day_plan_decisions d JOIN orchestrator.scheduled_actions a"
            " ON a.action_id = d.action_id"
        )
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
