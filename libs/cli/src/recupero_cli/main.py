"""`recupero`: import portfolios and list import profiles through the ingest service's HTTP API.

Exit status: 0 done, 1 the import ran and failed, 2 the command could not do its job (usage, API
key, tenant, connection, or a request ingest refused). The progress bars and errors go to stderr and
the report to stdout, so a script can keep the report and a person sees both.
"""

import os
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from recupero_cli.client import IngestClient, IngestError, IngestRefused, IngestUnreachable
from recupero_cli.credentials import (
    API_KEY_ENV,
    DEFAULT_INGEST_URL,
    DEMO_KEY_FILE,
    DEMO_TENANT,
    INGEST_URL_ENV,
    MissingApiKey,
    normalise_url,
    resolve_api_key,
)
from recupero_cli.render import profiles_table, rejections_table, report_table
from recupero_cli.report import ImportReport, format_rate, rows_per_second

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
POLL_SECONDS = 0.5
# While following an import, ingest may restart (the import is resumed by another worker):
# keep asking for this long before giving up on it.
UNREACHABLE_GRACE_SECONDS = 30.0

app = typer.Typer(
    name="recupero",
    help="Recupero from the command line: import a creditor's portfolio into the ingest "
    "service and read its report.\n\n"
    "Every command talks to ingest's HTTP API with a tenant API key "
    f"(--api-key, or ${API_KEY_ENV}; for the local stack's {DEMO_TENANT} tenant the key in "
    f"{DEMO_KEY_FILE} is used).",
    epilog="Example:\n\n    recupero import cartera.csv --tenant demo-bank --rejections-out rejected.csv",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    # A traceback's locals would print the API key.
    pretty_exceptions_show_locals=False,
)


class Mode(StrEnum):
    incremental = "incremental"
    full = "full"


# Options shared by every command.
TenantOption = Annotated[
    str,
    typer.Option(
        "--tenant",
        "-t",
        envvar="RECUPERO_TENANT",
        help="Tenant to act for; it must be the tenant that owns the API key.",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str,
    typer.Option("--url", envvar=INGEST_URL_ENV, help="Base URL of the ingest service."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help=f"The tenant's API key. Default: ${API_KEY_ENV}, or for {DEMO_TENANT} the key "
        f"in {DEMO_KEY_FILE} (looked up from the current directory upwards).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class Terminal:
    """Where output goes: the report to stdout, progress and errors to stderr."""

    out: Console
    err: Console

    @classmethod
    def open(cls) -> "Terminal":
        return cls(out=Console(), err=Console(stderr=True))

    def fail(self, message: str, code: int = EXIT_USAGE) -> NoReturn:
        # Soft wrap: the terminal folds long lines, rich inserts no breaks into paths and URLs.
        self.err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        raise typer.Exit(code)


def _connect(
    ctx: typer.Context, terminal: Terminal, tenant: str, url: str, api_key: str | None
) -> IngestClient:
    try:
        key = resolve_api_key(tenant, api_key, os.environ, Path.cwd())
    except MissingApiKey as exc:
        terminal.fail(str(exc))
    # Tests hand an httpx transport in through the context object, in place of the network.
    transport = ctx.obj if isinstance(ctx.obj, httpx.BaseTransport) else None
    try:
        return IngestClient(normalise_url(url), key, transport=transport)
    except httpx.InvalidURL as exc:
        terminal.fail(f"--url {url!r} is not a URL ({exc}), e.g. {DEFAULT_INGEST_URL}")


def _explain(error: IngestError, tenant: str) -> str:
    if isinstance(error, IngestRefused) and error.status_code in (401, 403):
        return (
            f"ingest refused the API key for tenant {tenant!r} ({error.detail}): give that "
            f"tenant's key with --api-key or ${API_KEY_ENV}"
        )
    if isinstance(error, IngestRefused):
        return f"ingest refused the request ({error.status_code}): {error.detail}"
    return str(error)


@app.command("import")
def import_portfolio(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE",
            help="The creditor's export: CSV (any delimiter or encoding the profile describes) "
            "or XLSX.",
            show_default=False,
        ),
    ],
    tenant: TenantOption,
    profile: Annotated[
        str, typer.Option(help="Import profile that describes the file's layout.")
    ] = "generic-csv",
    mode: Annotated[
        Mode,
        typer.Option(
            help="incremental: the file updates the debtors it names. full: the file is the "
            "whole portfolio, and documents missing from it are settled."
        ),
    ] = Mode.incremental,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="ISO-DATETIME",
            help="When the creditor took the snapshot, with its UTC offset, e.g. "
            "2025-06-30T23:59:00-05:00. Default: now.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = DEFAULT_INGEST_URL,
    api_key: ApiKeyOption = None,
    rejections_out: Annotated[
        Path | None,
        typer.Option(
            "--rejections-out",
            metavar="PATH",
            dir_okay=False,
            help="Save every rejected row (row, field, value, reason) to this CSV file.",
            show_default=False,
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait", help="Return once ingest has the file, without following the import."
        ),
    ] = False,
) -> None:
    """Import a portfolio file and show what ingest made of it.

    Uploads FILE to the ingest service, follows the import with a progress bar (rows read,
    rows/s), then prints the report: rows accepted and rejected, debtors new, changed, unchanged
    and settled, and the total balance per currency. Bad rows never stop an import: the first
    10 are shown and --rejections-out saves all of them.

    Exit status: 0 completed, 1 the import failed, 2 usage, API key, tenant or connection
    problem.

    Examples:

        recupero import cartera.csv --tenant demo-bank --rejections-out rejected.csv
        RECUPERO_API_KEY=rk_... recupero import corte.csv -t acme-bank --mode full
    """
    terminal = Terminal.open()
    if as_of is not None:
        as_of = _check_as_of(terminal, as_of)
    if no_wait and rejections_out is not None:
        terminal.fail("--rejections-out needs the import to finish: drop --no-wait")
    with _connect(ctx, terminal, tenant, url, api_key) as client:
        try:
            _check_profile_exists(client, profile, tenant)
            started = time.monotonic()
            report = _upload(terminal, client, file, profile, mode, as_of)
        except IngestError as exc:
            terminal.fail(_explain(exc, tenant))
        upload_seconds = time.monotonic() - started
        if report.tenant_id is not None and report.tenant_id != tenant:
            terminal.fail(
                f"the API key belongs to tenant {report.tenant_id!r}, not {tenant!r}; ingest "
                f"queued this file as import {report.import_id} for {report.tenant_id!r}. Give "
                f"the key of tenant {tenant!r} with --api-key or ${API_KEY_ENV}"
            )
        if no_wait:
            terminal.out.print(
                f"Import [bold]{report.import_id}[/] queued (status {escape(report.status)}). "
                f"Follow it: "
                f"GET {escape(client.base_url)}/v1/imports/{report.import_id}",
                soft_wrap=True,
            )
            return
        report, processing_seconds = _follow(terminal, client, report)
        total_seconds = time.monotonic() - started
        terminal.out.print(
            report_table(
                report,
                upload_seconds=upload_seconds,
                total_seconds=total_seconds,
                rate=rows_per_second(report.rows_total, processing_seconds),
            )
        )
        if report.status == "failed":
            terminal.err.print(
                f"[bold red]import failed:[/] {escape(report.error or 'ingest gave no reason')}",
                soft_wrap=True,
            )
        _show_rejections(terminal, client, report, rejections_out, tenant)
    if report.status != "completed":
        raise typer.Exit(EXIT_FAILED)


def _check_as_of(terminal: Terminal, as_of: str) -> str:
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        terminal.fail(f"--as-of {as_of!r} is not an ISO date-time, e.g. 2025-06-30T23:59:00-05:00")
    if moment.tzinfo is None:
        terminal.fail(
            f"--as-of {as_of!r} has no UTC offset: say where the snapshot was taken, e.g. "
            f"{moment.isoformat()}-05:00 or {moment.isoformat()}Z"
        )
    return moment.isoformat()


def _check_profile_exists(client: IngestClient, profile: str, tenant: str) -> None:
    """Check the key, the connection and the profile before sending a file of possibly hundreds
    of MB, which ingest would only refuse once it had received all of it."""
    try:
        names = [found.name for found in client.list_profiles()]
    except IngestRefused as exc:
        if exc.status_code in (401, 403):
            raise
        return  # ingest will say what is wrong with the profile when the file arrives
    if profile not in names:
        raise IngestError(
            f"profile {profile!r} does not exist for tenant {tenant!r} (it has: "
            f"{', '.join(names) or 'none'}); PUT /v1/profiles/{profile} to create it"
        )


def _upload(
    terminal: Terminal,
    client: IngestClient,
    file: Path,
    profile: str,
    mode: Mode,
    as_of: str | None,
) -> ImportReport:
    size = file.stat().st_size
    description = f"Uploading {escape(file.name)}"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=terminal.err,
    ) as progress:
        task = progress.add_task(description, total=size)

        def on_progress(position: int) -> None:
            progress.update(task, completed=position)
            if position >= size:
                progress.update(task, description=f"{description}, ingest is storing it")

        try:
            report = client.submit_portfolio(
                file, profile=profile, mode=mode.value, as_of=as_of, on_progress=on_progress
            )
        except KeyboardInterrupt:
            terminal.fail("upload interrupted: nothing was imported", EXIT_INTERRUPTED)
        progress.update(task, description=f"Uploaded {escape(file.name)}")
    return report


def _follow(
    terminal: Terminal, client: IngestClient, report: ImportReport
) -> tuple[ImportReport, float]:
    """Polls the import until it completes or fails; returns it with the seconds its rows took."""
    accepted_at = time.monotonic()
    processing_since: float | None = None
    unreachable_since: float | None = None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows read"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=terminal.err,
    ) as progress:
        task = progress.add_task(
            "Waiting for a worker", total=report.bytes_total or None, rows="0", rate=""
        )
        try:
            while not report.finished:
                time.sleep(POLL_SECONDS)
                now = time.monotonic()
                try:
                    report = client.get_import(report.import_id)
                except IngestUnreachable as exc:
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > UNREACHABLE_GRACE_SECONDS:
                        terminal.fail(
                            f"{exc}; import {report.import_id} may still be going on in ingest"
                        )
                    progress.update(task, description="Ingest unreachable, retrying")
                    continue
                except IngestRefused as exc:
                    terminal.fail(f"following import {report.import_id}: {exc.detail}")
                unreachable_since = None
                if report.status != "received" and processing_since is None:
                    processing_since = now
                rate = rows_per_second(report.rows_total, now - (processing_since or now))
                progress.update(
                    task,
                    description="Importing" if report.status != "received" else "Waiting",
                    total=report.bytes_total or None,
                    completed=report.bytes_processed,
                    rows=f"{report.rows_total:,}",
                    rate=format_rate(rate) if processing_since is not None else "",
                )
        except KeyboardInterrupt:
            terminal.fail(
                f"stopped following; import {report.import_id} goes on in ingest: "
                f"GET {client.base_url}/v1/imports/{report.import_id}",
                EXIT_INTERRUPTED,
            )
        # The server's own timing of the work when it gives one: the polls only sample it.
        seconds = report.processing_seconds or time.monotonic() - accepted_at
        progress.update(
            task,
            description=report.status.capitalize(),
            completed=report.bytes_total if report.status == "completed" else None,
            rows=f"{report.rows_total:,}",
            rate=format_rate(rows_per_second(report.rows_total, seconds)),
        )
    return report, seconds


def _show_rejections(
    terminal: Terminal,
    client: IngestClient,
    report: ImportReport,
    rejections_out: Path | None,
    tenant: str,
) -> None:
    if report.rejections:
        terminal.out.print(rejections_table(report.rejections, report.rows_rejected))
    if rejections_out is not None:
        try:
            client.download_rejections(report, rejections_out)
        except IngestError as exc:
            terminal.fail(f"could not save the rejected rows: {_explain(exc, tenant)}")
        except OSError as exc:
            terminal.fail(f"could not write {rejections_out}: {exc.strerror or exc}")
        terminal.out.print(
            f"All {report.rows_rejected:,} rejected rows saved to {escape(str(rejections_out))}",
            soft_wrap=True,
        )
    elif report.rows_rejected:
        terminal.out.print(
            f"All {report.rows_rejected:,} rejected rows as CSV: "
            f"GET {escape(client.rejections_url(report))} (or pass --rejections-out PATH)",
            soft_wrap=True,
        )


@app.command("profiles")
def list_profiles(
    ctx: typer.Context,
    tenant: TenantOption,
    url: UrlOption = DEFAULT_INGEST_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """List the import profiles a tenant can use, with their format and description.

    Recupero's shipped profiles (version 0) and the tenant's own, each at its latest version.

    Example:

        recupero profiles --tenant demo-bank
    """
    terminal = Terminal.open()
    with _connect(ctx, terminal, tenant, url, api_key) as client:
        try:
            profiles = client.list_profiles()
        except IngestError as exc:
            terminal.fail(_explain(exc, tenant))
    terminal.out.print(profiles_table(profiles))
