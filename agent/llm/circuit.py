"""Circuit breaker for the LLM endpoint: stop calling a server that keeps failing, probe it again later.

Contracts:
- Closed: calls pass. After `failures` consecutive failed calls (transport faults after their retries:
  timeouts, connection errors, 5xx, 429) it opens.
- Open: `allow()` is False for `cooldown_s` (measured on the injected `clock`); the gateway abstains with
  reason "circuit open" without touching the network.
- Half-open: after the cooldown, exactly one call at a time goes out as a probe; every other call is
  refused (as when open) while the probe is in flight. A success closes the circuit, a failure re-opens it
  for another cooldown; a probe that ends without either (a bad answer, a 400, a cancelled task) frees the
  slot for the next probe.
- Calls go out inside `with breaker.attempt() as allowed:` (the gateway wraps each HTTP attempt in it);
  `allowed` is False when the circuit refuses the call, and the probe slot is released when the block ends,
  whatever happens in it. `allow()` only asks, without claiming the slot.
- Bad answers (invalid JSON, schema errors) and over-long prompts are not endpoint failures and do not count.
- Single-threaded by design: the gateway uses it from one event loop (a probe is claimed and released
  without an await in between checks, so concurrent tasks of that loop cannot both claim it).
- `backoff_delay(n, base, cap, rng)` is the wait before retry n+1: exponential (base * 2**n, capped) with
  "equal jitter" (a uniform draw in its upper half), so synchronized clients spread out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Counts consecutive endpoint failures and opens for a cooldown."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Create a closed breaker.

        Args:
            failures: Consecutive failures that open the circuit.
            cooldown_s: How long it stays open before probing again.
            clock: Monotonic seconds (injectable for tests).
        """
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        """The breaker's state now."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown_s:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        """Whether a call could go out now (closed, or half-open with no probe in flight); claims nothing."""
        state = self.state
        return state == "closed" or (state == "half-open" and not self._probing)

    @contextmanager
    def attempt(self) -> Iterator[bool]:
        """Claim the right to send one call: yields False when refused; a claimed probe slot is released
        when the block ends (record the outcome inside the block)."""
        state = self.state
        if state == "closed":
            yield True
            return
        if state == "open" or self._probing:
            yield False
            return
        self._probing = True
        try:
            yield True
        finally:
            self._probing = False

    def record_success(self) -> None:
        """A call reached the endpoint and got an answer: close the circuit."""
        self._consecutive = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """A call failed at the transport level; open when the threshold is reached (or when probing)."""
        self._consecutive += 1
        if self.state == "half-open" or self._consecutive >= self.failures:
            self._opened_at = self._clock()

    def retry_in_s(self) -> float:
        """Seconds until the open circuit lets a probe through (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))


def backoff_delay(n: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry `n + 1` (n = 0 for the first retry)."""
    d = min(cap_s, base_s * 2.0**n)
    return d / 2 + rng.uniform(0, d / 2)
