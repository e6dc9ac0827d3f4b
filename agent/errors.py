"""tradegraph's exception hierarchy: each class names how the caller reacts.

    TradegraphError              base; the CLI prints str(e) on one line and exits non-zero
    ├── ConfigError              bad configuration or command-line input: stop, nothing written
    ├── DataError                market data missing, empty or invalid: stop
    ├── ExchangeError            the exchange refused (bad symbol, auth, ...): stop, no retry
    │   └── TemporaryExchangeError   network fault still failing after retries: skip the tick
    ├── StrategyError            unknown strategy or bad parameter: stop
    └── LLMUnavailable           endpoint down or circuit open: fall back as configured

LLM answers that are wrong (bad JSON, absurd values) are not exceptions: the gateway turns them into an
abstained HOLD with a reason (principle 2).
"""

from __future__ import annotations


class TradegraphError(Exception):
    """Base class: a failure with a message fit for one line of CLI output."""


class ConfigError(TradegraphError):
    """Invalid configuration or command-line input."""


class DataError(TradegraphError):
    """Market data is missing, empty or fails validation."""


class ExchangeError(TradegraphError):
    """The exchange rejected a request; retrying will not help."""


class TemporaryExchangeError(ExchangeError):
    """A retryable exchange fault (network, rate limit, outage) that outlived its retries."""


class StrategyError(TradegraphError):
    """An unknown strategy or an invalid strategy parameter."""


class LLMUnavailable(TradegraphError):
    """The LLM endpoint cannot be reached (connection refused, circuit breaker open)."""
