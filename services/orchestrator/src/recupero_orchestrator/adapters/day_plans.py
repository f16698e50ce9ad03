"""The record of planning the day: runs per tenant and day, each split into disjoint ranges of
debtor ids ("parts") with a cursor. A part is claimed for one chunk at a time (its row locked with
SKIP LOCKED in the chunk's transaction), so any number of processes share a run without planning a
debtor twice, and a chunk's schedule rows commit with the cursor that says they were planned."""

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

Row = dict[str, Any]

_COUNTS = ("debtors", "actions", "skipped", "moved", "replanned")
_PROGRESS = (
    "SELECT r.run_id, r.tenant_id, r.plan_date, r.trigger, r.planned_at, r.started_at,"
    " r.finished_at, count(*) AS parts, count(p.finished_at) AS parts_finished, "
    + ", ".join(f"sum(p.{name})::bigint AS {name}" for name in _COUNTS)
    + " FROM orchestrator.day_plan_runs r JOIN orchestrator.day_plan_parts p USING (run_id)"
)


async def tenants_with_open_cases(connection: Any) -> list[str]:
    """Tenants with open cases following a strategy: those the daily run plans."""
    rows = await connection.fetch(
        "SELECT DISTINCT tenant_id FROM orchestrator.cases"
        " WHERE status = 'open' AND strategy_id IS NOT NULL ORDER BY tenant_id"
    )
    return [row["tenant_id"] for row in rows]


async def start_run(
    connection: Any, tenant_id: str, plan_date: date, trigger: str, now: datetime, parts: int
) -> UUID | None:
    """A new run of the tenant's day, its open cases split into `parts` ranges of about the same
    size. None when the day's daily run exists already (a replica or an earlier start made it)."""
    run_id = await connection.fetchval(
        "INSERT INTO orchestrator.day_plan_runs"
        " (run_id, tenant_id, plan_date, trigger, planned_at, started_at)"
        " VALUES ($1, $2, $3, $4, $5, clock_timestamp())"
        " ON CONFLICT (tenant_id, plan_date) WHERE trigger = 'daily' DO NOTHING RETURNING run_id",
        uuid4(),
        tenant_id,
        plan_date,
        trigger,
        now,
    )
    if run_id is None:
        return None
    # The last debtor of each range but the last (which runs to the end of the key space).
    bounds = [
        row["through"]
        for row in await connection.fetch(
            "SELECT max(debtor_id) AS through FROM (SELECT debtor_id,"
            " ntile($2) OVER (ORDER BY debtor_id) AS part FROM orchestrator.cases"
            " WHERE tenant_id = $1 AND status = 'open' AND strategy_id IS NOT NULL) ranked"
            " GROUP BY part ORDER BY part",
            tenant_id,
            parts,
        )
    ][:-1]
    ranges = zip(["", *bounds], [*bounds, None], strict=True)
    await connection.executemany(
        "INSERT INTO orchestrator.day_plan_parts"
        " (run_id, part, tenant_id, after_debtor, through_debtor, resume_after)"
        " VALUES ($1, $2, $3, $4, $5, $4)",
        [(run_id, part, tenant_id, after, through) for part, (after, through) in enumerate(ranges)],
    )
    return UUID(str(run_id))


async def unfinished_runs(connection: Any, plan_date: date, tenant_id: str | None) -> list[UUID]:
    """The day's runs not finished yet (interrupted, or under way in another process)."""
    rows = await connection.fetch(
        "SELECT run_id FROM orchestrator.day_plan_runs WHERE plan_date = $1"
        " AND finished_at IS NULL AND ($2::text IS NULL OR tenant_id = $2) ORDER BY started_at",
        plan_date,
        tenant_id,
    )
    return [row["run_id"] for row in rows]


async def claim_part(connection: Any, run_ids: Sequence[UUID], first: int) -> Row | None:
    """An unfinished part of these runs that no other transaction holds, locked for this one;
    parts from `first` on are tried first, so processes starting at different parts rarely meet."""
    row = await connection.fetchrow(
        "SELECT *, clock_timestamp() AS claimed_at FROM orchestrator.day_plan_parts"
        " WHERE run_id = ANY($1::uuid[]) AND finished_at IS NULL"
        " ORDER BY part < $2, part LIMIT 1 FOR UPDATE SKIP LOCKED",
        list(run_ids),
        first,
    )
    return None if row is None else dict(row)


async def lock_cases_of_part(connection: Any, part: Row, limit: int) -> list[Row]:
    """The part's next open cases following a strategy, in key order, locked for this
    transaction; a case a consumer holds right now is skipped (that consumer re-plans it).
    Only the columns planning reads (`day_plan.plan_debtor`), and of the contact only its
    country and time zone: the rest would be decoded a million times for nothing."""
    rows = await connection.fetch(
        "SELECT tenant_id, debtor_id, segment, days_past_due, oldest_due_on,"
        " snapshot_balance_minor, currency, snapshot_as_of, strategy_id, strategy_version,"
        " segment_entered_at, plan_status, plan_reason, replied_at,"
        " jsonb_build_object('country', contact->'country', 'time_zone', contact->'time_zone')"
        " AS contact"
        " FROM orchestrator.cases WHERE tenant_id = $1 AND debtor_id > $2"
        " AND ($3::text IS NULL OR debtor_id <= $3) AND status = 'open'"
        " AND strategy_id IS NOT NULL ORDER BY debtor_id LIMIT $4 FOR UPDATE SKIP LOCKED",
        part["tenant_id"],
        part["resume_after"],
        part["through_debtor"],
        limit,
    )
    return [dict(row) for row in rows]


async def record_chunk(
    connection: Any, part: Row, last_debtor: str | None, counts: Row, finished: bool
) -> None:
    """What a chunk planned, committed with its schedule rows: the cursor moves past its last
    debtor; the run is finished when its last part is."""
    await connection.execute(
        "UPDATE orchestrator.day_plan_parts SET resume_after = coalesce($3, resume_after),"
        " debtors = debtors + $4, actions = actions + $5, skipped = skipped + $6,"
        " moved = moved + $7, replanned = replanned + $8,"
        " started_at = coalesce(started_at, $10),"
        " finished_at = CASE WHEN $9 THEN clock_timestamp() END"
        " WHERE run_id = $1 AND part = $2",
        part["run_id"],
        part["part"],
        last_debtor,
        *(counts[name] for name in _COUNTS),
        finished,
        part["claimed_at"],
    )
    if finished:
        await connection.execute(
            "UPDATE orchestrator.day_plan_runs SET finished_at = clock_timestamp()"
            " WHERE run_id = $1 AND NOT EXISTS (SELECT 1 FROM orchestrator.day_plan_parts"
            " WHERE run_id = $1 AND finished_at IS NULL)",
            part["run_id"],
        )


async def runs_progress(
    connection: Any, run_ids: Sequence[UUID] | None, tenant_id: str | None, limit: int = 100
) -> list[Row]:
    """Runs with what their parts planned so far, newest first: of these runs, or of a tenant."""
    rows = await connection.fetch(
        _PROGRESS + " WHERE ($1::uuid[] IS NULL OR r.run_id = ANY($1::uuid[]))"
        " AND ($2::text IS NULL OR r.tenant_id = $2)"
        " GROUP BY r.run_id ORDER BY r.started_at DESC, r.run_id LIMIT $3",
        None if run_ids is None else list(run_ids),
        tenant_id,
        limit,
    )
    return [dict(row) for row in rows]
