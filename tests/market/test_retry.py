"""Retry policy and the translation of ccxt exceptions into tradegraph errors."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from agent.config import ExchangeSettings
from agent.errors import ExchangeError, TemporaryExchangeError
from agent.market.retry import RetryPolicy, acall, call, translate
from tests.market.helpers import SleepRecorder


class Flaky:
    """Raises the given exceptions in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def coroutine(self) -> str:
        return self()


def policy(sleeper: SleepRecorder, max_retries: int = 5, jitter: float = 0.5) -> RetryPolicy:
    return RetryPolicy(
        max_retries=max_retries,
        base_s=1.0,
        max_s=5.0,
        sleep=sleeper,
        async_sleep=sleeper.asleep,
        rng=lambda: jitter,
    )


def test_backoff_is_exponential_capped_and_jittered_within_half_to_full():
    low, high = policy(SleepRecorder(), jitter=0.0), policy(SleepRecorder(), jitter=1.0)
    assert [low.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert [high.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(
    "error",
    [
        ccxt.RequestTimeout,
        ccxt.ExchangeNotAvailable,
        ccxt.DDoSProtection,
        ccxt.RateLimitExceeded,
        ccxt.NetworkError,
        ccxt.OnMaintenance,
    ],
)
def test_network_faults_are_retried_until_success(error):
    sleeper = SleepRecorder()
    fn = Flaky(error("x"), error("y"))
    assert call(policy(sleeper), "binance fetch_ohlcv", fn) == "ok"
    assert fn.calls == 3 and sleeper.waits == [0.75, 1.5]


def test_network_faults_outliving_the_retries_raise_temporary_exchange_error():
    sleeper = SleepRecorder()
    fn = Flaky(*[ccxt.DDoSProtection("binance 429 Too Many Requests\n{...}")] * 9)
    with pytest.raises(TemporaryExchangeError) as caught:
        call(policy(sleeper, max_retries=2), "binance fetch_ohlcv BTC/USDT 1h", fn)
    assert fn.calls == 3 and len(sleeper.waits) == 2
    assert str(caught.value) == (
        "binance fetch_ohlcv BTC/USDT 1h failed after 3 attempts: "
        "DDoSProtection: binance 429 Too Many Requests {...}"
    )


@pytest.mark.parametrize(
    "error",
    [ccxt.BadSymbol, ccxt.AuthenticationError, ccxt.ExchangeError, ccxt.BadResponse, ccxt.InsufficientFunds],
)
def test_other_ccxt_errors_fail_at_once(error):
    sleeper = SleepRecorder()
    fn = Flaky(error('binance {"code":-1121,"msg":"Invalid symbol."}'))
    with pytest.raises(ExchangeError) as caught:
        call(policy(sleeper), "binance fetch_ohlcv", fn)
    assert type(caught.value) is ExchangeError
    assert fn.calls == 1 and sleeper.waits == []
    assert str(caught.value).startswith(f"binance fetch_ohlcv failed: {error.__name__}: binance")


def test_non_ccxt_exceptions_are_bugs_and_propagate_unchanged():
    fn = Flaky(KeyError("oops"))
    with pytest.raises(KeyError):
        call(policy(SleepRecorder()), "x", fn)
    assert fn.calls == 1


def test_no_retries_means_one_attempt():
    fn = Flaky(ccxt.RequestTimeout("t"))
    with pytest.raises(TemporaryExchangeError, match=r"^x failed: RequestTimeout: t$"):
        call(policy(SleepRecorder(), max_retries=0), "x", fn)
    assert fn.calls == 1


def test_messages_are_one_line_and_bounded():
    message = str(translate(ccxt.ExchangeError("a\nb\r\n" + "c" * 1000), "what"))
    assert "\n" not in message and "\r" not in message and len(message) < 300 and message.endswith("...")


def test_the_async_variant_retries_with_the_async_sleep():
    sleeper = SleepRecorder()
    fn = Flaky(ccxt.RequestTimeout("t"))
    assert asyncio.run(acall(policy(sleeper), "x", fn.coroutine)) == "ok"
    assert fn.calls == 2 and sleeper.waits == [0.75]
    bad = Flaky(ccxt.BadSymbol("b"))
    with pytest.raises(ExchangeError, match="BadSymbol"):
        asyncio.run(acall(policy(sleeper), "x", bad.coroutine))
    assert bad.calls == 1


def test_policy_from_settings():
    p = RetryPolicy.from_settings(ExchangeSettings(max_retries=7, backoff_base_s=0.1, backoff_max_s=2.0))
    assert (p.max_retries, p.base_s, p.max_s) == (7, 0.1, 2.0)
