"""FakeGateway: the scripted DecisionGateway other stages test against."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import LLMUnavailable
from agent.llm.protocol import DecisionGateway
from agent.llm.schema import Action, DecisionRequest, TradeDecision
from agent.testing.fakes import Abstain, FakeGateway


def request(symbol: str = "BTC/USDT", **kw: object) -> DecisionRequest:
    return DecisionRequest(symbol, ({"role": "user", "content": symbol},), prompt_hash=symbol, **kw)  # type: ignore[arg-type]


def buy(symbol: str = "BTC/USDT") -> TradeDecision:
    return TradeDecision(
        symbol=symbol,
        action=Action.BUY,
        target_exposure=0.3,
        confidence=0.7,
        stop_loss=90.0,
        rationale="scripted buy",
    )


def test_scripted_answers_per_symbol_in_order() -> None:
    gw: DecisionGateway = FakeGateway(
        {"BTC/USDT": [buy(), "{oops", Abstain("timeout")], "ETH/USDT": buy("ETH/USDT")}
    )
    first = asyncio.run(gw.decide_many([request(), request("ETH/USDT")]))
    assert [r.decision.action for r in first] == [Action.BUY, Action.BUY]
    assert [r.abstained for r in first] == [False, False]
    bad, timeout, default = (asyncio.run(gw.decide_many([request()]))[0] for _ in range(3))
    assert bad.abstained and bad.reason is not None and bad.reason.startswith("invalid json")
    assert timeout.abstained and timeout.reason == "timeout" and timeout.decision.action is Action.HOLD
    assert not default.abstained and default.decision.action is Action.HOLD
    assert "fake gateway" in default.decision.rationale


def test_callable_answers_and_recorded_requests() -> None:
    gw = FakeGateway(lambda r: buy(r.symbol) if r.symbol == "SOL/USDT" else Abstain("circuit open"))
    results = asyncio.run(gw.decide_many([request("SOL/USDT"), request("XRP/USDT")]))
    assert results[0].decision.symbol == "SOL/USDT" and not results[0].abstained
    assert results[1].reason == "circuit open"
    assert [r.symbol for r in gw.requests] == ["SOL/USDT", "XRP/USDT"]


def test_disallowed_action_is_returned_as_is_like_the_real_gateway() -> None:
    gw = FakeGateway(default=buy())
    (result,) = asyncio.run(gw.decide_many([request(allowed_actions=(Action.HOLD,))]))
    assert not result.abstained and result.decision.action is Action.BUY


def test_raw_text_answers_are_validated() -> None:
    gw = FakeGateway(
        default='{"symbol": "BTC/USDT", "action": "sell", "target_exposure": 2, "confidence": 0.5, '
        '"rationale": "x"}'
    )
    (result,) = asyncio.run(gw.decide_many([request()]))
    assert (
        result.abstained and result.reason is not None and result.reason.startswith("schema: target_exposure")
    )


def test_unavailable_raises_llm_unavailable() -> None:
    with pytest.raises(LLMUnavailable):
        asyncio.run(FakeGateway(unavailable=True).decide_many([request()]))
