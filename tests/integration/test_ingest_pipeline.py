"""The ingest pipeline on a real PostgreSQL and Kafka: files, re-imports, incremental and full
snapshots, the batch API, the `debt-records` topic and the interest policy."""

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from recupero_devstack.sample import sample_portfolio
from recupero_events import (
    DebtImported,
    DebtRecordsSubmitted,
    PostalAddress,
    SubmittedDocument,
    decode,
    encode,
)
from recupero_ingest.adapters.partitions import partition_of, partition_sql
from recupero_ingest.adapters.repository import IngestRepository
from recupero_ingest.bootstrap import bootstrap
from recupero_ingest.domain.profiles import shipped_profiles
from recupero_ingest.handlers import (
    REFRESH_STATISTICS_AFTER,
    SubmitImport,
    run_import,
    submit_import,
)
from recupero_ingest.settings import IngestSettings
from recupero_runtime.auth import hash_api_key
from recupero_runtime.db import UnitOfWork
from recupero_runtime.service import Service
from tests.kafka_reading import of_tenant, read_topics

pytestmark = pytest.mark.integration

AS_OF = "2026-11-20T12:00:00+00:00"
AS_OF_TIME = datetime.fromisoformat(AS_OF)


@dataclass
class Ingest:
    service: Service[IngestRepository]
    client: httpx.AsyncClient
    tenant_id: str
    kafka_bootstrap: str

    async def upload(self, content: str, **form: str) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/portfolios?wait=60",
            files={"file": ("cartera.csv", content.encode(), "text/csv")},
            data={"as_of": AS_OF, **form},
        )
        assert response.status_code == 202, response.text
        report: dict[str, Any] = response.json()
        assert report["status"] == "completed", report
        return report

    async def events(self) -> list[DebtImported]:
        """This tenant's `debt-imported` events on Kafka, once the relay has sent every one, in
        the order of their imports."""
        while True:
            async with self.service.unit_of_work() as uow:
                if not await uow.session.scalar(
                    text("SELECT count(*) FROM ingest.outbox WHERE tenant_id = :t"),
                    {"t": self.tenant_id},
                ):
                    break
            await asyncio.sleep(0.05)
        records = await read_topics(self.kafka_bootstrap, ["debt-imported"])
        mine = of_tenant(records["debt-imported"], self.tenant_id)
        mine.sort(key=lambda r: dict(r.headers)["ce_time"])
        payloads = [decode(r.topic, r.value, r.headers).payload for r in mine]
        assert all(isinstance(p, DebtImported) for p in payloads)
        return payloads  # type: ignore[return-value]


@pytest.fixture
async def ingest(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Ingest]:
    tenant = f"bank-{uuid4().hex[:8]}"
    settings = IngestSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys={hash_api_key("k"): tenant},
        log_level="WARNING",
        import_poll_seconds=0.1,
    )
    service, app = bootstrap(settings)
    await service.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://ingest",
            headers={"Authorization": "Bearer k"},
            timeout=120,
        ) as client:
            yield Ingest(service, client, tenant, kafka_bootstrap)
    finally:
        await service.stop()


def rows_of(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content)))


def to_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def balances_of(rows: list[dict[str, str]]) -> dict[str, int]:
    """Total per currency, in minor units, of these valid sample rows."""
    expected: dict[str, int] = {}
    for row in rows:
        sign = -1 if row["document_type"] == "credit_note" else 1
        exponent = 0 if row["currency"] == "CLP" else 2
        minor = int(Decimal(row["amount"]).scaleb(exponent))
        expected[row["currency"]] = expected.get(row["currency"], 0) + sign * minor
    return expected


async def test_a_file_is_imported_reported_and_its_rejections_downloadable(ingest: Ingest) -> None:
    content = sample_portfolio(20, seed=3, invalid_rows=3, id_prefix="P")
    report = await ingest.upload(content)
    valid = [r for r in rows_of(content) if r["debtor_id"].startswith("P")]
    assert (report["rows_total"], report["rows_rejected"]) == (len(valid) + 3, 3)
    assert report["debtors_new"] == 20
    assert report["balance_by_currency"] == balances_of(valid)

    events = await ingest.events()
    assert sorted(e.debtor_id for e in events) == [f"P{n:06d}" for n in range(1, 21)]
    assert all(e.change == "new" and e.documents_added for e in events)

    downloaded = await ingest.client.get(report["rejections_csv"])
    assert downloaded.status_code == 200
    lines = list(csv.reader(io.StringIO(downloaded.text)))
    assert lines[0] == ["row_number", "field", "value", "reason"]
    assert [line[1] for line in lines[1:]] == ["email", "due_on", "amount"]


async def test_the_same_file_twice_changes_nothing_and_emits_nothing(ingest: Ingest) -> None:
    content = sample_portfolio(15, seed=4, invalid_rows=2, id_prefix="R")
    first = await ingest.upload(content)
    again = await ingest.upload(content)
    assert (again["debtors_new"], again["debtors_changed"], again["debtors_unchanged"]) == (
        0,
        0,
        15,
    )
    # Nothing was applied in between: the import that applied this file answers for it.
    assert again["same_file_as"] == first["import_id"]
    assert again["rows_rejected"] == first["rows_rejected"] == 2
    rejections = [
        (await ingest.client.get(report["rejections_csv"])).text for report in (first, again)
    ]
    assert rejections[0] == rejections[1]
    # Once something else was applied, the same file is read and compared debtor by debtor.
    batch = await ingest.client.post(
        "/v1/debts:batch",
        json={
            "as_of": AS_OF,
            "records": [
                {
                    "debtor_id": "R-OTHER",
                    "name": "Otro",
                    "country": "PE",
                    "document_id": "R-OTHER-1",
                    "due_on": "2026-10-01",
                    "amount": "10.00",
                    "currency": "PEN",
                }
            ],
        },
    )
    assert batch.status_code == 200, batch.text
    third = await ingest.upload(content)
    assert third["same_file_as"] is None
    assert (third["debtors_changed"], third["debtors_unchanged"]) == (0, 15)
    assert len(await ingest.events()) == 16


async def test_a_new_snapshot_emits_only_what_changed_and_says_what(ingest: Ingest) -> None:
    rows = rows_of(sample_portfolio(10, seed=5, id_prefix="S"))
    await ingest.upload(to_csv(rows))
    first = next(r for r in rows if r["debtor_id"] == "S000002")
    first["amount"] = "1.00" if first["currency"] != "CLP" else "1"
    added = {**first, "document_id": "S000002-NEW", "due_on": "2026-12-01"}
    report = await ingest.upload(to_csv([*rows, added]))
    assert (report["debtors_changed"], report["debtors_unchanged"]) == (1, 9)
    [event] = (await ingest.events())[10:]
    assert event.debtor_id == "S000002" and event.change == "changed"
    assert event.documents_added == ["S000002-NEW"]
    assert event.documents_changed == [first["document_id"]]
    assert event.previous_balance is not None
    assert event.balance.amount_minor == sum(d.amount.amount_minor for d in event.documents)


async def test_a_full_snapshot_settles_what_the_creditor_no_longer_lists(ingest: Ingest) -> None:
    rows = rows_of(sample_portfolio(6, seed=6, id_prefix="F"))
    await ingest.upload(to_csv(rows), mode="full")
    remaining = [r for r in rows if r["debtor_id"] != "F000003"]
    report = await ingest.upload(to_csv(remaining), mode="full")
    assert (report["debtors_settled"], report["debtors_unchanged"]) == (1, 5)
    [settled] = (await ingest.events())[6:]
    assert (settled.debtor_id, settled.change, settled.balance.amount_minor) == (
        "F000003",
        "settled",
        0,
    )
    assert settled.documents == []
    assert settled.documents_settled == sorted(
        r["document_id"] for r in rows if r["debtor_id"] == "F000003"
    )
    # An incremental import of the same rows would have settled nothing.
    again = await ingest.upload(to_csv(remaining))
    assert again["debtors_settled"] == 0


async def test_same_rows_again_are_skipped_only_when_they_are_the_whole_state(
    ingest: Ingest,
) -> None:
    rows = rows_of(sample_portfolio(3, seed=8, id_prefix="W"))
    ids = [r["debtor_id"] for r in rows]
    chosen = next(debtor for debtor in ids if ids.count(debtor) > 1)
    debtor = [r for r in rows if r["debtor_id"] == chosen]
    first, later = debtor[:1], debtor[1:]
    other = next(r for r in rows if r["debtor_id"] != chosen)

    async def upload(chosen_rows: list[dict[str, str]], n: int, mode: str = "incremental") -> Any:
        # Another debtor's amount differs every time: never the same file twice, so each
        # upload is compared debtor by debtor.
        return await ingest.upload(to_csv([*chosen_rows, {**other, "amount": str(n)}]), mode=mode)

    async def events_of_chosen() -> list[DebtImported]:
        return [e for e in await ingest.events() if e.debtor_id == chosen]

    await upload(first, 1)
    # Incremental: the debtor now owes the documents of both files.
    await upload(later, 2)
    again = await upload(later, 3)
    assert (again["debtors_unchanged"], again["debtors_changed"]) == (1, 1)
    assert len(await events_of_chosen()) == 2
    # A full snapshot of the later rows alone settles the first file's document.
    await upload(later, 4, mode="full")
    settled = (await events_of_chosen())[-1]
    assert settled.documents_settled == [first[0]["document_id"]]
    assert sorted(d.document_id for d in settled.documents) == sorted(
        r["document_id"] for r in later
    )
    # From then on the same rows are the whole state: nothing to do.
    assert (await upload(later, 5, mode="full"))["debtors_unchanged"] == 1
    assert len(await events_of_chosen()) == 3


async def test_with_interest_the_same_rows_on_a_later_day_are_a_new_balance(
    ingest: Ingest,
) -> None:
    policy = await ingest.client.put(
        "/v1/settings/interest", json={"kind": "simple_daily", "daily_rate": "0.001"}
    )
    assert policy.status_code == 200, policy.text
    content = to_csv(rows_of(sample_portfolio(2, seed=10, id_prefix="J")))
    await ingest.upload(content)
    assert (await ingest.upload(content))["debtors_unchanged"] == 2
    later = await ingest.upload(content, as_of="2026-11-25T12:00:00+00:00")
    assert later["debtors_changed"] == 2
    grown = (await ingest.events())[-2:]
    assert all(
        e.previous_balance is not None and e.balance.amount_minor > e.previous_balance.amount_minor
        for e in grown
    )


async def test_batch_records_take_the_same_path_and_are_idempotent(ingest: Ingest) -> None:
    records = [
        {
            "debtor_id": "A1",
            "name": "Ana Pérez",
            "email": "ana@example.com",
            "country": "PE",
            "document_id": "A1-1",
            "due_on": "2026-10-01",
            "principal": "100.50",
            "interest": "4.25",
            "fees": "1.00",
            "currency": "PEN",
        },
        {
            "debtor_id": "A1",
            "name": "Ana Pérez",
            "country": "PE",
            "document_id": "A1-2",
            "due_on": "2026-11-01",
            "amount": "50.00",
            "currency": "PEN",
        },
        {
            "debtor_id": "A2",
            "name": "Bad Date",
            "country": "PE",
            "document_id": "A2-1",
            "due_on": "01/11/2026",
            "amount": "50.00",
            "currency": "PEN",
        },
    ]
    response = await ingest.client.post(
        "/v1/debts:batch", json={"records": records, "as_of": AS_OF}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows_accepted"], report["rows_rejected"], report["debtors_new"]) == (2, 1, 1)
    assert report["rejections"][0]["field"] == "due_on"
    [event] = await ingest.events()
    assert event.balance.amount_minor == 10050 + 425 + 100 + 5000
    assert event.contact.time_zone == "America/Lima"
    again = await ingest.client.post(
        "/v1/debts:batch", json={"records": records[:2], "as_of": AS_OF}
    )
    assert again.json()["debtors_unchanged"] == 1
    assert len(await ingest.events()) == 1


async def test_records_streamed_on_kafka_are_imported(ingest: Ingest, kafka_bootstrap: str) -> None:
    message = DebtRecordsSubmitted(
        tenant_id=ingest.tenant_id,
        debtor_id="K1",
        name="Luis Gómez",
        phone="300 123 4567",
        country="CO",
        address_line_1="Carrera 7 # 32-16",
        city="Bogotá",
        region="Cundinamarca",
        documents=[
            SubmittedDocument(
                document_id="K1-1", due_on="2026-09-30", amount="250000.00", currency="COP"
            )
        ],
    )
    encoded = encode(message, source="core-banking")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            encoded.topic, encoded.value, key=encoded.key, headers=encoded.headers
        )
    finally:
        await producer.stop()
    async with asyncio.timeout(60):
        while not (events := await ingest.events()):
            await asyncio.sleep(0.2)
    [event] = events
    assert (event.debtor_id, event.balance.amount_minor, event.contact.phone) == (
        "K1",
        25_000_000,
        "+573001234567",
    )
    assert event.contact.postal_address == PostalAddress(
        street_lines=["Carrera 7 # 32-16"], city="Bogotá", region="Cundinamarca", country="CO"
    )


async def test_the_interest_policy_accrues_on_overdue_principal(ingest: Ingest) -> None:
    policy = await ingest.client.put(
        "/v1/settings/interest", json={"kind": "simple_daily", "daily_rate": "0.001"}
    )
    assert policy.status_code == 200, policy.text
    record = {
        "debtor_id": "I1",
        "name": "Ines",
        "country": "MX",
        "document_id": "I1-1",
        "due_on": "2026-11-10",
        "principal": "1000.00",
        "currency": "MXN",
    }
    # 10 days overdue on 2026-11-20 in Mexico City: 1000.00 * 0.001 * 10 = 10.00
    response = await ingest.client.post(
        "/v1/debts:batch", json={"records": [record], "as_of": AS_OF}
    )
    assert response.status_code == 200, response.text
    [event] = await ingest.events()
    [document] = event.documents
    assert document.interest is not None and document.interest.amount_minor == 1000
    assert event.balance.amount_minor == 100_000 + 1000


async def test_bad_input_is_refused_with_a_reason(ingest: Ingest) -> None:
    unknown = await ingest.client.post(
        "/v1/portfolios", files={"file": ("x.csv", b"a,b\n1,2\n")}, data={"profile": "nope"}
    )
    assert unknown.status_code == 422 and "nope" in unknown.text
    response = await ingest.client.post(
        "/v1/portfolios?wait=30", files={"file": ("x.csv", b"a,b\n1,2\n")}
    )
    report = response.json()
    assert report["status"] == "failed" and "debtor_id" in report["error"]
    assert (await ingest.client.get(f"/v1/imports/{uuid4()}")).status_code == 404
    bad_profile = await ingest.client.put(
        "/v1/profiles/mine",
        content=json.dumps({"name": "mine", "format": "csv"}),
        headers={"Content-Type": "application/json"},
    )
    assert bad_profile.status_code == 422 and "columns" in bad_profile.text


async def test_postal_addresses_under_spanish_headers_reach_debt_imported(ingest: Ingest) -> None:
    profile = """
name: cartera-ar
delimiter: ";"
decimal_separator: ","
thousands_separator: "."
date_formats: ["%d/%m/%Y"]
columns:
  debtor_id: Nro Cliente
  name: Titular
  document_id: Comprobante
  due_on: Vencimiento
  amount: Saldo
  address_line_1: Dirección
  address_line_2: Piso/Depto
  city: Ciudad
  region: Provincia
  postal_code: Código Postal
optional_columns: [address_line_2]
default_document_type: invoice
defaults: {country: AR, currency: ARS}
"""
    saved = await ingest.client.put(
        "/v1/profiles/cartera-ar", content=profile, headers={"Content-Type": "application/yaml"}
    )
    assert saved.status_code == 201, saved.text
    # Headers as a spreadsheet in Spanish writes them: case and accents do not count.
    content = (
        "NRO CLIENTE;TITULAR;COMPROBANTE;VENCIMIENTO;SALDO;DIRECCION;PISO/DEPTO;CIUDAD;"
        "PROVINCIA;CODIGO POSTAL\n"
        "A-1;Ana Pérez;FC-1;10/10/2026;1.500,75;Av. Corrientes 1234;Piso 5 B;"
        "Ciudad Autónoma de Buenos Aires;CABA;C1043AAZ\n"
        "A-2;Luis Díaz;FC-2;10/10/2026;99,99;;;Rosario;Santa Fe;\n"
        "A-3;Eva Ruiz;FC-3;10/10/2026;10,00;San Martín 50;;;Mendoza;M5500\n"
    )
    report = await ingest.upload(content, profile="cartera-ar")
    rejections = (await ingest.client.get(f"/v1/imports/{report['import_id']}")).json()
    assert (report["debtors_new"], report["rows_rejected"]) == (2, 1), rejections
    [rejected] = rejections["rejections"]
    assert (rejected["row_number"], rejected["field"]) == (4, "city")
    assert "needs a city" in rejected["reason"]

    by_debtor = {event.debtor_id: event for event in await ingest.events()}
    assert by_debtor["A-1"].contact.postal_address == PostalAddress(
        street_lines=["Av. Corrientes 1234", "Piso 5 B"],
        city="Ciudad Autónoma de Buenos Aires",
        region="CABA",
        postal_code="C1043AAZ",
        country="AR",
    )
    # A city and a province without a street are no address: the debt is imported without one.
    assert by_debtor["A-2"].contact.postal_address is None

    # The debtor moves: the new address is a change of the debtor, published once.
    moved = content.replace("Av. Corrientes 1234;Piso 5 B", "Florida 100;")
    await ingest.upload(moved, profile="cartera-ar")
    events = [event for event in await ingest.events() if event.debtor_id == "A-1"]
    assert [event.change for event in events] == ["new", "changed"]
    assert events[-1].contact.postal_address is not None
    assert events[-1].contact.postal_address.street_lines == ("Florida 100",)


async def test_rows_that_contradict_earlier_rows_are_rejected_saying_which(
    ingest: Ingest,
) -> None:
    rows = rows_of(sample_portfolio(3, seed=11, id_prefix="K"))
    of_debtor = {d: [r for r in rows if r["debtor_id"] == d] for d in ("K000001", "K000002")}
    currency = of_debtor["K000002"][0]["currency"]
    other = "USD" if currency != "USD" else "PEN"
    listed_twice = {**of_debtor["K000001"][0], "amount": "5"}
    second_currency = {**of_debtor["K000002"][0], "document_id": "K-USD", "currency": other}
    report = await ingest.upload(to_csv([*rows, listed_twice, second_currency]))
    assert (report["rows_rejected"], report["debtors_new"]) == (2, 3)
    first_row = rows.index(of_debtor["K000001"][0]) + 2  # the header is row 1
    downloaded = await ingest.client.get(report["rejections_csv"])
    assert list(csv.reader(io.StringIO(downloaded.text)))[1:] == [
        [
            str(len(rows) + 2),
            "document_id",
            listed_twice["document_id"],
            f"document {listed_twice['document_id']} of debtor K000001 is already at row "
            f"{first_row}",
        ],
        [
            str(len(rows) + 3),
            "currency",
            other,
            f"debtor K000002 has documents in {currency} in this file",
        ],
    ]
    # The first rows won: the balances are the file's without the two contradicting rows.
    again = await ingest.upload(to_csv(rows))
    assert again["balance_by_currency"] == report["balance_by_currency"]
    assert (again["debtors_changed"], again["debtors_unchanged"]) == (0, 3)

    # A known debtor is kept in its currency: an incremental import cannot add another.
    moved = {**of_debtor["K000002"][0], "document_id": "K-NEW", "currency": other}
    later = await ingest.upload(to_csv([moved]))
    assert later["rows_rejected"] == 1
    downloaded = await ingest.client.get(later["rejections_csv"])
    assert list(csv.reader(io.StringIO(downloaded.text)))[1] == [
        "2",
        "currency",
        other,
        f"debtor K000002 is kept in {currency}; an incremental import cannot add {other}",
    ]


class WorkerDied(Exception):
    pass


class _Repo:
    """The repository of a unit of work that notes which partition it consolidates."""

    def __init__(self, repo: IngestRepository, unit: "_Unit") -> None:
        self._repo, self._unit = repo, unit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    async def record_partition(self, *args: Any, **report: Any) -> None:
        self._unit.partition = args[2]
        await self._repo.record_partition(*args, **report)


class _Unit:
    """The service's unit of work, but only `survivor`'s partition commits: the others stop
    at their commit once it has, as a worker killed then would (they roll back)."""

    def __init__(
        self, inner: UnitOfWork[IngestRepository], survivor: int, committed: asyncio.Event
    ) -> None:
        self._inner, self._survivor, self._committed = inner, survivor, committed
        self.partition: int | None = None

    async def __aenter__(self) -> "_Unit":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)

    @property
    def repo(self) -> _Repo:
        return _Repo(self._inner.repo, self)

    @property
    def source(self) -> str:
        return self._inner.source

    def publish(self, payload: Any, correlation_id: str | None = None) -> str:
        return self._inner.publish(payload, correlation_id)

    async def commit(self) -> None:
        if self.partition != self._survivor:
            await self._committed.wait()
            raise WorkerDied
        await self._inner.commit()
        self._committed.set()


async def test_a_large_import_leaves_statistics_the_next_import_can_plan_with(
    ingest: Ingest,
) -> None:
    """After a first import of 10,000 debtors, PostgreSQL's estimates of the stored debtors and
    documents count them, not the empty tables of before: the next snapshot, maybe minutes
    later, compares its changed debtors' documents with a plan made for the real sizes."""
    report = await ingest.upload(sample_portfolio(REFRESH_STATISTICS_AFTER, seed=8, id_prefix="L"))
    assert report["debtors_new"] == REFRESH_STATISTICS_AFTER
    async with ingest.service.unit_of_work() as uow:
        result = await uow.session.execute(
            text(
                "SELECT relname, reltuples FROM pg_class WHERE relnamespace ="
                " 'ingest'::regnamespace AND relname IN ('debtors', 'documents')"
            )
        )
        estimated = {name: tuples for name, tuples in result}
    assert estimated["debtors"] >= REFRESH_STATISTICS_AFTER
    assert estimated["documents"] >= REFRESH_STATISTICS_AFTER


async def test_partitions_are_computed_alike_in_python_and_postgresql(ingest: Ingest) -> None:
    debtor_ids = ["D000001", "B0294369", "Pérez-7", "tab\tand\\slash", "", "ñandú 🦙", "x" * 300]
    async with ingest.service.unit_of_work() as uow:
        for partitions in (1, 2, 3, 7, 64):
            in_sql = await uow.session.scalars(
                text(
                    f"SELECT {partition_sql('debtor_id')} FROM unnest(CAST(:ids AS text[]))"
                    " WITH ORDINALITY AS t (debtor_id, n) ORDER BY n"
                ),
                {"ids": debtor_ids, "partitions": partitions},
            )
            assert list(in_sql) == [partition_of(d, partitions) for d in debtor_ids]


@pytest.mark.parametrize("survivor", [0, 1])
async def test_an_import_stopped_after_one_partition_resumes_with_the_exact_report(
    ingest: Ingest, survivor: int
) -> None:
    """Partition 0 also keeps the rows rejected by the parser: whichever partition committed
    before the stop, every rejection is kept and counted once."""
    content = sample_portfolio(60, seed=21, invalid_rows=4, id_prefix="Q")
    async with ingest.service.unit_of_work() as uow:

        async def chunks() -> AsyncIterator[bytes]:
            yield content.encode()

        import_id = await submit_import(
            SubmitImport(ingest.tenant_id, "q.csv", "generic-csv", "incremental", AS_OF_TIME),
            uow,
            chunks(),
            shipped_profiles(),
        )
        # Claimed by the worker about to die: the service's own worker leaves it alone.
        await uow.session.execute(
            text(
                "UPDATE ingest.imports SET status = 'parsing', heartbeat_at = now()"
                " WHERE import_id = :i"
            ),
            {"i": import_id},
        )
        await uow.commit()
        job = await uow.repo.get_import(ingest.tenant_id, import_id)
    assert job is not None

    async def no_progress(rows: int, bytes_read: int) -> None:
        pass

    async def stored_chunks() -> AsyncIterator[bytes]:
        async with ingest.service.unit_of_work() as reader:
            async for chunk in reader.repo.chunks(import_id):
                yield chunk

    survivor_committed = asyncio.Event()
    with pytest.raises(ExceptionGroup) as stopped:
        await run_import(
            job,
            lambda: _Unit(ingest.service.unit_of_work(), survivor, survivor_committed),
            stored_chunks(),
            no_progress,
            shipped_profiles(),
            partitions=2,
        )
    assert stopped.group_contains(WorkerDied)
    async with ingest.service.unit_of_work() as uow:
        done = await uow.repo.committed_partitions(import_id)
        half = await uow.session.scalar(
            text("SELECT count(*) FROM ingest.debtors WHERE tenant_id = :t"),
            {"t": ingest.tenant_id},
        )
        assert [p["partition"] for p in done] == [survivor]
        assert 0 < half < 60
        # The worker died: the service's worker takes the job over.
        await uow.repo.release_job(import_id)
        await uow.commit()

    while (report := (await ingest.client.get(f"/v1/imports/{import_id}")).json())[
        "status"
    ] != "completed":
        assert report["status"] in ("received", "parsing"), report
        await asyncio.sleep(0.1)
    valid = [r for r in rows_of(content) if r["debtor_id"].startswith("Q")]
    assert (report["rows_total"], report["rows_accepted"], report["rows_rejected"]) == (
        len(valid) + 4,
        len(valid),
        4,
    )
    assert (report["debtors_new"], report["debtors_changed"], report["debtors_unchanged"]) == (
        60,
        0,
        0,
    )
    assert report["balance_by_currency"] == balances_of(valid)
    downloaded = await ingest.client.get(report["rejections_csv"])
    assert len(list(csv.reader(io.StringIO(downloaded.text)))) == 1 + 4

    events = await ingest.events()
    assert sorted(e.debtor_id for e in events) == [f"Q{n:06d}" for n in range(1, 61)]
    async with ingest.service.unit_of_work() as uow:
        debtors = await uow.session.scalar(
            text("SELECT count(*) FROM ingest.debtors WHERE tenant_id = :t"),
            {"t": ingest.tenant_id},
        )
    assert debtors == 60
