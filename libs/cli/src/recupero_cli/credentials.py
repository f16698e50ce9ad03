"""Which ingest to talk to and with which tenant API key."""

from collections.abc import Mapping
from pathlib import Path

DEFAULT_INGEST_URL = "http://127.0.0.1:8001"
INGEST_URL_ENV = "RECUPERO_INGEST_URL"
API_KEY_ENV = "RECUPERO_API_KEY"
# `make up` creates the local stack's demo tenant and keeps its key here, at the repository root.
DEMO_TENANT = "demo-bank"
DEMO_KEY_FILE = Path("var") / "demo-tenant.key"


class MissingApiKey(Exception):
    """No API key could be found for the tenant; the message says how to give one."""


def find_demo_key_file(start: Path) -> Path | None:
    """`var/demo-tenant.key` in `start` or the nearest parent that has one."""
    for directory in (start, *start.parents):
        candidate = directory / DEMO_KEY_FILE
        if candidate.is_file():
            return candidate
    return None


def resolve_api_key(tenant: str, given: str | None, environ: Mapping[str, str], cwd: Path) -> str:
    """The key from `--api-key`, else `$RECUPERO_API_KEY`, else the local demo tenant's key file.

    The key file is only used for the demo tenant: a key meant for one tenant must never be sent
    on behalf of another by accident.
    """
    for candidate in (given, environ.get(API_KEY_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    if tenant == DEMO_TENANT:
        key_file = find_demo_key_file(cwd)
        if key_file is not None:
            key = key_file.read_text(encoding="utf-8").strip()
            if key:
                return key
            raise MissingApiKey(
                f"{key_file} is empty: run `make up` to create the demo tenant's key, "
                f"or pass --api-key KEY"
            )
    hint = (
        f" (the local stack keeps the {DEMO_TENANT} key in {DEMO_KEY_FILE}; run this from the "
        f"repository, or `make up` first)"
        if tenant == DEMO_TENANT
        else ""
    )
    raise MissingApiKey(
        f"no API key for tenant {tenant!r}: pass --api-key KEY or set {API_KEY_ENV}{hint}"
    )


def normalise_url(url: str) -> str:
    """`127.0.0.1:8001/` -> `http://127.0.0.1:8001`: a scheme, and no trailing slash to double."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url
