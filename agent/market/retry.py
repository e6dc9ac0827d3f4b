"""Retries for exchange calls: the one place where ccxt's exceptions become tradegraph's.

Contracts:
- Retryable: `ccxt.NetworkError` and its subclasses (`RequestTimeout`, `ExchangeNotAvailable`,
  `DDoSProtection` — where Binance's HTTP 429 lands —, `RateLimitExceeded`, ...). They are retried up to
  `max_retries` times (so at most `max_retries + 1` attempts) with exponential backoff and jitter:
  the n-th wait (n = 0, 1, ...) is `cap/2 + U(0, 1) × cap/2` with `cap = min(max_s, base_s × 2**n)`.
  When the retries are used up the call raises `TemporaryExchangeError`.
- Not retryable: every other `ccxt.BaseError` (`BadSymbol`, other `ccxt.ExchangeError`s, `BadResponse`
  for malformed bodies): raised at once as `agent.errors.ExchangeError`.
- Messages are one line: `<what> failed[ after N attempts]: <ccxt class>: <first line of ccxt's text>`.
- `sleep`, `async_sleep` and `rng` are injectable, so tests neither sleep nor depend on chance.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import ccxt

from agent.errors import ExchangeError, TemporaryExchangeError

if TYPE_CHECKING:
    from agent.config import ExchangeSettings

T = TypeVar("T")

_MAX_DETAIL = 240


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently exchange calls are retried."""

    max_retries: int = 5
    base_s: float = 0.5
    max_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: Callable[[], float] = field(default=random.random)

    @classmethod
    def from_settings(
        cls,
        exchange: ExchangeSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> RetryPolicy:
        """The policy configured in `Settings.exchange` (tests pass recorded sleeps and a fixed jitter)."""
        return cls(
            max_retries=exchange.max_retries,
            base_s=exchange.backoff_base_s,
            max_s=exchange.backoff_max_s,
            sleep=sleep,
            async_sleep=async_sleep,
            rng=rng,
        )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0-based): exponential with jitter."""
        cap = min(self.max_s, self.base_s * 2.0**retry)
        return cap / 2.0 + self.rng() * cap / 2.0


def call(policy: RetryPolicy, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run `fn(*args, **kwargs)`, retrying network faults; ccxt errors leave as tradegraph errors."""
    for attempt in range(policy.max_retries + 1):
        try:
            return fn(*args, **kwargs)
        except ccxt.NetworkError as e:
            if attempt == policy.max_retries:
                raise translate(e, what, attempt + 1) from e
            policy.sleep(policy.delay(attempt))
        except ccxt.BaseError as e:
            raise translate(e, what) from e
    raise AssertionError("unreachable")  # pragma: no cover


async def acall(
    policy: RetryPolicy, what: str, fn: Callable[..., Awaitable[T]], *args: object, **kwargs: object
) -> T:
    """`call` for coroutine functions (ccxt.async_support); waits with `policy.async_sleep`."""
    for attempt in range(policy.max_retries + 1):
        try:
            return await fn(*args, **kwargs)
        except ccxt.NetworkError as e:
            if attempt == policy.max_retries:
                raise translate(e, what, attempt + 1) from e
            await policy.async_sleep(policy.delay(attempt))
        except ccxt.BaseError as e:
            raise translate(e, what) from e
    raise AssertionError("unreachable")  # pragma: no cover


def translate(error: BaseException, what: str, attempts: int | None = None) -> ExchangeError:
    """The tradegraph error (with a one-line message) for a ccxt exception."""
    detail = " ".join(str(error).split())
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    name = type(error).__name__
    if isinstance(error, ccxt.NetworkError):
        tries = f" after {attempts} attempts" if attempts and attempts > 1 else ""
        return TemporaryExchangeError(f"{what} failed{tries}: {name}: {detail}")
    return ExchangeError(f"{what} failed: {name}: {detail}")
