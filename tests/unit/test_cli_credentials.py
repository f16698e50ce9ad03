"""Which API key the CLI sends: the one given, the environment's, or the local demo tenant's."""

from pathlib import Path

import pytest

from recupero_cli.credentials import MissingApiKey, normalise_url, resolve_api_key

pytestmark = pytest.mark.unit


def demo_checkout(root: Path, key: str = "rk_demo\n") -> Path:
    """A checkout of the repository after `make up`: `var/demo-tenant.key` at its root."""
    (root / "var").mkdir()
    (root / "var" / "demo-tenant.key").write_text(key)
    return root


def test_the_option_wins_over_the_environment_and_the_key_file(tmp_path: Path) -> None:
    demo_checkout(tmp_path)
    environ = {"RECUPERO_API_KEY": "rk_env"}

    assert resolve_api_key("demo-bank", " rk_given ", environ, tmp_path) == "rk_given"


def test_the_environment_wins_over_the_key_file(tmp_path: Path) -> None:
    demo_checkout(tmp_path)

    assert resolve_api_key("demo-bank", None, {"RECUPERO_API_KEY": "rk_env"}, tmp_path) == "rk_env"


def test_the_demo_tenant_uses_the_local_stack_key_from_any_subdirectory(tmp_path: Path) -> None:
    subdirectory = demo_checkout(tmp_path) / "deploy" / "demo"
    subdirectory.mkdir(parents=True)

    assert resolve_api_key("demo-bank", None, {}, subdirectory) == "rk_demo"


def test_the_demo_key_file_is_never_sent_for_another_tenant(tmp_path: Path) -> None:
    demo_checkout(tmp_path)

    with pytest.raises(MissingApiKey) as raised:
        resolve_api_key("acme-bank", None, {}, tmp_path)

    message = str(raised.value)
    assert "'acme-bank'" in message
    assert "--api-key" in message and "RECUPERO_API_KEY" in message


def test_without_the_demo_key_file_the_error_says_where_it_would_be(tmp_path: Path) -> None:
    with pytest.raises(MissingApiKey, match=r"var/demo-tenant\.key.*make up"):
        resolve_api_key("demo-bank", None, {}, tmp_path)


def test_an_empty_key_counts_as_none(tmp_path: Path) -> None:
    demo_checkout(tmp_path, key="\n")

    with pytest.raises(MissingApiKey, match="empty"):
        resolve_api_key("demo-bank", "", {"RECUPERO_API_KEY": "  "}, tmp_path)


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("https://ingest.example.com/", "https://ingest.example.com"),
        ("localhost:8001", "http://localhost:8001"),
    ],
)
def test_ingest_url_gets_a_scheme_and_loses_the_trailing_slash(given: str, url: str) -> None:
    assert normalise_url(given) == url
