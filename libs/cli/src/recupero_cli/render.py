"""What the user reads: rich tables built from reports. Server text is never read as markup."""

from rich import box
from rich.table import Table
from rich.text import Text

from recupero_cli.client import ProfileSummary
from recupero_cli.money import format_money
from recupero_cli.report import ImportReport, Rejection, format_duration, format_rate

REJECTIONS_SHOWN = 10


def report_table(
    report: ImportReport, *, upload_seconds: float, total_seconds: float, rate: float
) -> Table:
    status_style = "green" if report.status == "completed" else "red"
    title = Text.assemble(
        "Import ", (report.import_id, "bold"), " ", (report.status, f"bold {status_style}")
    )
    table = Table(title=title, box=box.SIMPLE_HEAVY, show_header=False, title_justify="left")
    table.add_column("What")
    table.add_column("Figure", justify="right")
    if report.profile_name is not None:
        version = f" v{report.profile_version}" if report.profile_version is not None else ""
        mode = f", {report.mode}" if report.mode else ""
        table.add_row("Profile", Text(f"{report.profile_name}{version}{mode}"))
    table.add_row("Rows read", f"{report.rows_total:,}")
    table.add_row("Rows accepted", f"{report.rows_accepted:,}")
    table.add_row(
        "Rows rejected",
        Text(f"{report.rows_rejected:,}", style="yellow" if report.rows_rejected else ""),
        end_section=True,
    )
    table.add_row("Debtors new", f"{report.debtors_new:,}")
    table.add_row("Debtors changed", f"{report.debtors_changed:,}")
    table.add_row("Debtors unchanged", f"{report.debtors_unchanged:,}")
    table.add_row("Debtors settled", f"{report.debtors_settled:,}", end_section=True)
    if report.same_file_as:
        table.add_row(
            "Same file as",
            f"import {report.same_file_as}, the last one applied: nothing changed, nothing re-read",
            end_section=True,
        )
    balances = sorted(report.balance_by_currency.items())
    if not balances:
        table.add_row("Balance", "none", end_section=True)
    for number, (currency, amount_minor) in enumerate(balances, start=1):
        table.add_row(
            f"Balance {currency}",
            Text(format_money(amount_minor, currency)),
            end_section=number == len(balances),
        )
    import_seconds = max(total_seconds - upload_seconds, 0.0)
    table.add_row(
        "Elapsed",
        f"{format_duration(total_seconds)} (upload {format_duration(upload_seconds)}, "
        f"import {format_duration(import_seconds)})",
    )
    table.add_row("Throughput", format_rate(rate))
    return table


def rejections_table(rejections: list[Rejection], rows_rejected: int) -> Table:
    shown = rejections[:REJECTIONS_SHOWN]
    table = Table(
        title=f"First {len(shown)} of {rows_rejected:,} rejected rows",
        title_justify="left",
        box=box.SIMPLE,
    )
    table.add_column("Row", justify="right")
    table.add_column("Field")
    table.add_column("Value")
    table.add_column("Reason")
    for rejection in shown:
        table.add_row(
            str(rejection.row_number),
            Text(rejection.field),
            Text(rejection.value),
            Text(rejection.reason),
        )
    return table


def profiles_table(profiles: list[ProfileSummary]) -> Table:
    table = Table(title="Import profiles", title_justify="left", box=box.SIMPLE)
    table.add_column("Name", style="bold")
    table.add_column("Version", justify="right")
    table.add_column("Format")
    table.add_column("Description")
    for profile in profiles:
        table.add_row(
            Text(profile.name),
            "0 (shipped)" if profile.version == 0 else str(profile.version),
            Text(profile.format),
            Text(profile.description),
        )
    return table
