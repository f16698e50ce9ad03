"""What every provider adapter shares: how a send can end, retries with backoff, rate limits.

A send ends in one of four ways, and the handler treats each differently:
- accepted: the provider returned its message id;
- `ProviderRefused`: the provider answered and will never take this message (invalid number,
  opted out): the delivery fails and the orchestrator falls back to another channel;
- `ProviderUnavailable` (429, 5xx, connection refused): the provider answered, or could not be
  reached, and did NOT take the message: retried here with backoff (never sooner than
  Retry-After), then parked by the handler and retried from PostgreSQL;
- `OutcomeUnknown` (timeout or broken connection after the request left): the provider may have
  taken it; the handler waits for the status callback before deciding to send again.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from recupero_notifier.adapters.http import ProviderClient
from recupero_runtime.consumer import RetryLater

T = TypeVar("T")


class NotAccepted(Exception):
    """The provider did not take the message: sending again cannot make a duplicate."""


class ProviderRefused(NotAccepted):
    """A permanent refusal of this message; `reason` is published with the failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderCredentialsRejected(NotAccepted):
    """401/403: a configuration error, not the message's fault. The delivery is parked (and
    logged) and sent again with backoff, so it leaves once an operator fixes the credentials."""


class ProviderUnavailable(NotAccepted, RetryLater):
    """429 or 5xx or no connection: try again later, sooner than `retry_after` never."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OutcomeUnknown(RetryLater):
    """The request may have reached the provider: do not resend before its callback had time."""


class _BackoffOrRetryAfter:
    """Exponential backoff with jitter, but never sooner than the provider's Retry-After."""

    def __init__(self, max_wait: float) -> None:
        self._exponential = wait_exponential_jitter(multiplier=0.2, max=max_wait, jitter=0.2)

    def __call__(self, state: RetryCallState) -> float:
        wait = self._exponential(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, ProviderUnavailable) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait


class _RetryAfterBeyondBudget(stop_base):
    """Stop at once when the provider asks us to wait longer than the budget has left: the
    delivery is parked until then instead of holding the consumer."""

    def __init__(self, budget_seconds: float) -> None:
        self._budget = budget_seconds

    def __call__(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if not isinstance(error, ProviderUnavailable) or error.retry_after is None:
            return False
        elapsed = state.seconds_since_start or 0.0
        return elapsed + error.retry_after > self._budget


async def with_retries(call: Callable[[], Awaitable[T]], budget_seconds: float) -> T:
    """`call` again while the provider is unavailable, for up to `budget_seconds`; then the
    last `ProviderUnavailable` propagates and the handler parks the delivery."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(ProviderUnavailable),
        wait=_BackoffOrRetryAfter(max_wait=max(budget_seconds / 4, 0.2)),
        stop=stop_after_delay(budget_seconds) | _RetryAfterBeyondBudget(budget_seconds),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("tenacity stops by re-raising")  # pragma: no cover


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class TokenBucket:
    """At most `rate` calls per second on average, bursts up to `burst`; one per provider
    account, shared by every send of this process. A rate of 0 means no limit."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self._rate = rate
        self._capacity = burst if burst is not None else max(rate, 1.0)
        self._tokens = self._capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self._rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._updated) * self._rate
                )
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)


async def post(
    client: ProviderClient,
    url: str,
    describe: Callable[[httpx.Response], str],
    **request: Any,
) -> httpx.Response:
    """POST to a provider and sort the outcome into the four endings above."""
    try:
        response = await client.post(url, **request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ProviderUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise OutcomeUnknown(f"{url}: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if status == 429 or status >= 500:
        raise ProviderUnavailable(
            f"HTTP {status}: {describe(response)}",
            retry_after_seconds(response.headers.get("retry-after")),
        )
    if status in (401, 403):
        raise ProviderCredentialsRejected(f"HTTP {status}: {describe(response)}")
    if status >= 400:
        raise ProviderRefused(describe(response))
    return response
