"""The ingest service's HTTP API, as the CLI uses it. Nothing here prints."""

import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from recupero_cli.report import ImportReport

# Every call but the upload is small; the upload answers only once ingest has stored the whole
# file, which for a file of a few hundred MB takes a while after the last byte is sent.
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_UPLOAD_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=5.0)


class IngestError(Exception):
    """A call to ingest did not succeed; the message is meant for the user."""


class IngestUnreachable(IngestError):
    """No HTTP answer at all: nothing listening, a timeout, or the connection dropped."""


class IngestRefused(IngestError):
    """Ingest answered with an error status."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class ProfileSummary:
    name: str
    version: int
    format: str
    description: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ProfileSummary":
        document = data.get("profile") or {}
        return cls(
            name=str(data["name"]),
            version=int(data.get("version") or 0),
            format=str(document.get("format") or ""),
            description=str(document.get("description") or ""),
        )


class _ProgressFile(io.BufferedReader):
    """A file that reports how far it has been read, so httpx's streamed multipart upload
    (which reads it in 64 KiB chunks) can drive a progress bar without holding the file."""

    def __init__(self, path: Path, on_progress: Callable[[int], None]) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._on_progress = on_progress

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self._on_progress(self.tell())
        return chunk


def error_detail(response: httpx.Response) -> str:
    """The server's own explanation: FastAPI's `detail` (a sentence, or validation errors)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        problems = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                problems.append(
                    f"{where}: {item.get('msg', '')}" if where else str(item.get("msg"))
                )
            else:
                problems.append(str(item))
        return "; ".join(problems)
    return response.text.strip() or response.reason_phrase


class IngestClient:
    def __init__(
        self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=_TIMEOUT,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._http.close()

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """Turns httpx's transport errors into one the user can act on."""
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise IngestUnreachable(
                f"cannot reach ingest at {self.base_url}: is the stack up? `make up`"
            ) from exc
        except httpx.TransportError as exc:
            raise IngestUnreachable(
                f"lost the connection to ingest at {self.base_url}: {exc or type(exc).__name__}"
            ) from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._connection():
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise IngestRefused(response.status_code, error_detail(response))
        return response

    def list_profiles(self) -> list[ProfileSummary]:
        response = self._send("GET", "/v1/profiles")
        return [ProfileSummary.from_json(item) for item in response.json()]

    def submit_portfolio(
        self,
        path: Path,
        *,
        profile: str,
        mode: str,
        as_of: str | None,
        on_progress: Callable[[int], None],
    ) -> ImportReport:
        """Streams `path` to `POST /v1/portfolios` and returns the queued import's report."""
        form = {"profile": profile, "mode": mode}
        if as_of is not None:
            form["as_of"] = as_of
        with _ProgressFile(path, on_progress) as upload:
            response = self._send(
                "POST",
                "/v1/portfolios",
                params={"wait": 0},
                data=form,
                files={"file": (path.name, upload)},
                timeout=_UPLOAD_TIMEOUT,
            )
        return ImportReport.from_json(response.json())

    def get_import(self, import_id: str) -> ImportReport:
        return ImportReport.from_json(self._send("GET", f"/v1/imports/{import_id}").json())

    def rejections_url(self, report: ImportReport) -> str:
        """Where every rejected row can be downloaded (the report gives a path on ingest)."""
        path = report.rejections_csv or f"/v1/imports/{report.import_id}/rejections.csv"
        return str(self._http.base_url.join(path))

    def download_rejections(self, report: ImportReport, destination: Path) -> None:
        """Streams the rejections CSV into `destination`, which appears only once complete."""
        partial = destination.with_name(destination.name + ".part")
        try:
            with (
                self._connection(),
                self._http.stream("GET", self.rejections_url(report)) as response,
            ):
                if response.is_error:
                    response.read()
                    raise IngestRefused(response.status_code, error_detail(response))
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)
