"""Tenants' provider accounts: the file a platform team writes, validated at start-up with errors
that say where the problem is and never repeat a secret; each account speaks for its tenants."""

import json
from pathlib import Path
from typing import Any

import pytest

from recupero_notifier.adapters.accounts import (
    ProviderAccountsError,
    by_tenant,
    load_provider_accounts,
)

SID = "AC" + "a" * 32


def accounts_file(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "accounts.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def whatsapp(number_id: str = "1065", secret: str = "s3cr3t-app") -> dict[str, Any]:
    return {"phone_number_id": number_id, "access_token": "t0k3n", "app_secret": secret}


def test_a_valid_file_gives_each_tenant_its_accounts(tmp_path: Path) -> None:
    path = accounts_file(
        tmp_path,
        {
            "tenants": {
                "banco-norte": {
                    "whatsapp": whatsapp(),
                    "twilio": {
                        "account_sid": SID,
                        "auth_token": "tw",
                        "from_number": "+5215550001",
                    },
                },
                "banco-sur": {"whatsapp": whatsapp()},  # one account shared by two tenants
            }
        },
    )
    loaded = load_provider_accounts(path)
    norte = loaded.tenants["banco-norte"]
    assert norte.whatsapp is not None and norte.twilio is not None
    assert norte.twilio.voice_from_number is None
    assert norte.whatsapp.app_secret.get_secret_value() == "s3cr3t-app"
    # Secrets do not show in a repr (logs, tracebacks).
    assert "s3cr3t-app" not in repr(loaded)


def test_mistakes_are_listed_by_place_without_the_secrets(tmp_path: Path) -> None:
    path = accounts_file(
        tmp_path,
        {
            "tenants": {
                "banco-norte": {
                    "whatsapp": {"phone_number_id": "1065", "app_secret": "s3cr3t-app"},
                    "twilio": {"account_sid": "nope", "auth_token": "s3cr3t-tw", "from": "+52"},
                }
            }
        },
    )
    with pytest.raises(ProviderAccountsError) as error:
        load_provider_accounts(path)
    message = str(error.value)
    assert str(path) in message
    assert "tenants.banco-norte.whatsapp.access_token: Field required" in message
    assert "tenants.banco-norte.twilio.account_sid: String should match pattern" in message
    assert "tenants.banco-norte.twilio.from: Extra inputs are not permitted" in message
    assert "s3cr3t" not in message


def test_one_number_with_two_secrets_is_refused(tmp_path: Path) -> None:
    path = accounts_file(
        tmp_path,
        {
            "tenants": {
                "banco-norte": {"whatsapp": whatsapp(secret="one")},
                "banco-sur": {"whatsapp": whatsapp(secret="two")},
            }
        },
    )
    with pytest.raises(ProviderAccountsError, match="1065 is listed with different credentials"):
        load_provider_accounts(path)


def test_unreadable_or_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ProviderAccountsError, match="cannot read it"):
        load_provider_accounts(tmp_path / "missing.json")
    with pytest.raises(ProviderAccountsError, match=r"not JSON: .* line 1, column 2"):
        load_provider_accounts(accounts_file(tmp_path, "{tenants: 1}"))


def test_accounts_speak_for_their_tenants_and_the_default_for_everyone_else() -> None:
    accounts = by_tenant(
        "default",
        [
            ("banco-norte", "norte", lambda: "norte"),
            ("banco-sur", "norte", lambda: "a second copy"),  # same key: built once
            ("banco-este", "este", lambda: "este"),
        ],
    )
    assert accounts.for_tenant("banco-sur") == "norte"
    assert accounts.for_tenant("demo-bank") == "default"
    scopes = {key: scope for key, (_, scope) in accounts.scopes(lambda a: a).items()}
    assert scopes["norte"].serves("banco-norte") and scopes["norte"].serves("banco-sur")
    assert not scopes["norte"].serves("demo-bank")
    assert scopes["default"].serves("demo-bank")
    assert not scopes["default"].serves("banco-este")
    assert not by_tenant(None, [])
