"""Provider accounts per tenant: a creditor may send from its own WhatsApp Business number and its
own Twilio account; every other tenant uses the service's default account (the settings).

The tenants' accounts are a JSON file named by `RECUPERO_PROVIDER_ACCOUNTS_FILE`, meant to be
mounted from the platform's secret store (a Kubernetes Secret, a Vault agent file):

    {"tenants": {
        "banco-norte": {
            "whatsapp": {"phone_number_id": "106540352242922", "access_token": "EAAG...",
                         "app_secret": "...", "verify_token": "...", "messages_per_second": 80},
            "twilio": {"account_sid": "AC...", "auth_token": "...",
                       "from_number": "+5215550001111", "voice_from_number": "+5215550002222"}}}}

It is read and validated once at start-up; a mistake stops the service with every problem listed
by its place in the file. Secrets are `SecretStr`: never printed, logged or repeated in an error.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

E164 = r"^\+[1-9]\d{6,14}$"

Account = TypeVar("Account")


class ProviderAccountsError(ValueError):
    """The provider accounts file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    # A misspelt key is an error, not a setting silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class WhatsAppAccountConfig(_Strict):
    """A WhatsApp Business number of the tenant and the Meta app whose secret signs its webhooks."""

    phone_number_id: str = Field(pattern=r"^\d+$", description="Business phone number id.")
    access_token: SecretStr = Field(min_length=1, description="System user access token.")
    app_secret: SecretStr = Field(min_length=1, description="Signs X-Hub-Signature-256.")
    verify_token: SecretStr | None = Field(
        default=None,
        min_length=1,
        description="The app's webhook verify token (`hub.verify_token` of Meta's handshake).",
    )
    messages_per_second: float | None = Field(
        default=None, ge=0, description="Throughput of this number; unset: the default's."
    )


class TwilioAccountConfig(_Strict):
    """The tenant's Twilio account and the numbers it sends from."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr = Field(min_length=1, description="Basic auth; signs callbacks.")
    from_number: str = Field(pattern=E164, description="Sender of SMS (and calls by default).")
    voice_from_number: str | None = Field(default=None, pattern=E164, description="Caller id.")
    messages_per_second: float | None = Field(default=None, ge=0)


class TenantAccounts(_Strict):
    whatsapp: WhatsAppAccountConfig | None = None
    twilio: TwilioAccountConfig | None = None


class ProviderAccountsFile(_Strict):
    tenants: dict[str, TenantAccounts] = Field(default_factory=dict)

    @model_validator(mode="after")
    def one_secret_per_account(self) -> Self:
        """Webhooks are verified with the secret of the account they are addressed to, so one
        phone number id or Account SID cannot come with two different secrets."""
        whatsapp: dict[str, tuple[str, str]] = {}
        twilio: dict[str, str] = {}
        for tenant_id, accounts in self.tenants.items():
            if accounts.whatsapp is not None:
                number = accounts.whatsapp
                secrets = (
                    number.access_token.get_secret_value(),
                    number.app_secret.get_secret_value(),
                )
                if whatsapp.setdefault(number.phone_number_id, secrets) != secrets:
                    raise ValueError(
                        f"tenants.{tenant_id}.whatsapp: phone number id "
                        f"{number.phone_number_id} is listed with different credentials"
                    )
            if accounts.twilio is not None:
                token = accounts.twilio.auth_token.get_secret_value()
                if twilio.setdefault(accounts.twilio.account_sid, token) != token:
                    raise ValueError(
                        f"tenants.{tenant_id}.twilio: account {accounts.twilio.account_sid} "
                        "is listed with different auth tokens"
                    )
        return self


def load_provider_accounts(path: Path) -> ProviderAccountsFile:
    """Read and validate the file, or raise `ProviderAccountsError` naming every problem (by
    place in the file, never by value: the values are secrets)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProviderAccountsError(f"{path}: cannot read it: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderAccountsError(
            f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    try:
        return ProviderAccountsFile.model_validate(document)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ProviderAccountsError(
            f"{path}: {exc.error_count()} problem(s):\n{problems}"
        ) from None


@dataclass(frozen=True)
class AccountScope:
    """The tenants an account speaks for: those that configured it, or, for the default
    account, every tenant without an account of its own for that provider."""

    tenants: frozenset[str] | None
    others: frozenset[str] = frozenset()

    def serves(self, tenant_id: str) -> bool:
        if self.tenants is not None:
            return tenant_id in self.tenants
        return tenant_id not in self.others


class ByTenant(Generic[Account]):
    """One provider's accounts: the default and the tenants' own, each built once (so each has
    one rate limit however many tenants share it)."""

    def __init__(self, default: Account | None, own: Mapping[str, Account]) -> None:
        self._default = default
        self._own = dict(own)

    def for_tenant(self, tenant_id: str) -> Account | None:
        return self._own.get(tenant_id, self._default)

    def __bool__(self) -> bool:
        return self._default is not None or bool(self._own)

    def scopes(self, key: Callable[[Account], str]) -> dict[str, tuple[Account, AccountScope]]:
        """Each account by `key` (phone number id, Account SID) with the tenants it serves."""
        found: dict[str, tuple[Account, set[str]]] = {}
        for tenant_id, account in self._own.items():
            found.setdefault(key(account), (account, set()))[1].add(tenant_id)
        scopes = {
            name: (account, AccountScope(frozenset(tenants)))
            for name, (account, tenants) in found.items()
        }
        if self._default is not None:
            name = key(self._default)
            own_tenants = scopes[name][1].tenants if name in scopes else None
            others = frozenset(self._own) - (own_tenants or frozenset())
            scopes[name] = (self._default, AccountScope(None, others))
        return scopes


def by_tenant(
    default: Account | None,
    configured: Iterable[tuple[str, str, Callable[[], Account]]],
) -> ByTenant[Account]:
    """`configured`: (tenant, account key, build) per tenant; one account per key."""
    built: dict[str, Account] = {}
    own = {
        tenant_id: built[key] if key in built else built.setdefault(key, build())
        for tenant_id, key, build in configured
    }
    return ByTenant(default, own)
