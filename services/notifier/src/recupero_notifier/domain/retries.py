"""When a parked delivery is tried again: exponential backoff, never before the provider's
Retry-After. Pure: no I/O."""

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class ParkingBackoff:
    """`initial` after the first parked attempt, doubling per attempt up to `maximum`."""

    initial: timedelta
    maximum: timedelta

    def delay(self, attempt: int, retry_after_seconds: float | None) -> timedelta:
        exponential = min(self.initial * (1 << min(max(attempt - 1, 0), 30)), self.maximum)
        # Spread: deliveries parked by one outage must not all return in the same instant.
        spread = exponential * random.uniform(0.8, 1.0)
        if retry_after_seconds is not None:
            return max(spread, timedelta(seconds=retry_after_seconds))
        return spread
