"""Portfolio limits through the real tick path: the graph's risk node shares the room of one tick between
the symbols, and the broker's fills at the next open keep the whole book inside the caps."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agent.config import load_settings
from agent.db.models import Decision
from agent.db.session import open_db
from agent.graph.runner import open_runner, replay_rules
from agent.llm.protocol import ContextInput, Prompt
from agent.llm.schema import Action, TradeDecision
from agent.market.source import ts_ms
from agent.testing.fakes import FakeGateway
from tests.graph.helpers import short_source

BTC, ETH = "BTC/USDT", "ETH/USDT"


class _PlainBuilder:
    """A context builder that renders nothing: the fake gateway ignores the prompt."""

    def build(self, ctx: ContextInput, budget_tokens: int | None = None) -> Prompt:
        return Prompt(
            messages=({"role": "user", "content": ctx.symbol},),
            prompt_hash=ctx.symbol,
            estimated_tokens=1,
            stable_prefix_chars=0,
        )


def _buy_everything(symbol: str) -> TradeDecision:
    return TradeDecision(
        symbol=symbol,
        action=Action.BUY,
        target_exposure=1.0,
        confidence=0.9,
        stop_loss=None,
        take_profit=None,
        invalidation="",
        rationale="buy 1.0",
    )


def test_two_symbols_entering_in_the_same_bar_share_the_gross_and_cash_room(sqlite_url: str) -> None:
    risk: dict[str, Any] = {
        "max_gross_exposure": 0.5,
        "max_position_exposure": 0.4,
        "min_cash_fraction": 0.6,
        "risk_per_trade": 0.2,
    }
    settings = load_settings(database_url=sqlite_url, symbols=[BTC, ETH], risk=risk)
    source = short_source(settings, days=20)
    bars = ts_ms(source.history(BTC, source.last_ts(BTC)).index)
    decide_at, fill_at = int(bars[-3]), int(bars[-2])
    gateway = FakeGateway({BTC: _buy_everything(BTC), ETH: _buy_everything(ETH)})
    engine, factory = open_db(sqlite_url)
    try:
        with open_runner(
            settings,
            run_id="room",
            kind="backtest",
            strategy="llm",
            source=source,
            rules=replay_rules(settings, settings.symbols),
            gateway=gateway,
            builder=_PlainBuilder(),
            checkpoint=False,
            factory=factory,
        ) as runner:
            assert runner.tick(decide_at).status == "done"
            targets = {s: p.target_exposure for s, p in runner.rt.pending.items()}
            assert runner.tick(fill_at).status == "done"
            book = runner.rt.portfolio
        with factory() as s:
            rows = s.scalars(select(Decision).where(Decision.run_id == "room", Decision.bar_ts == decide_at))
            clamps = {d.symbol: [c["kind"] for c in d.clamps] for d in rows}
    finally:
        engine.dispose()

    assert set(targets) == {BTC, ETH}
    assert sum(targets.values()) <= 0.4 + 1e-9, targets  # cash floor 60%: at most 40% can be invested
    assert all("portfolio_room" in clamps[s] for s in (BTC, ETH)), clamps
    opens = {s: float(source.history(s, fill_at)["open"].iloc[-1]) for s in (BTC, ETH)}
    assert set(book.positions) == {BTC, ETH}
    value = sum(p.amount * opens[s] for s, p in book.positions.items())
    equity = book.cash + value
    assert value <= 0.5 * equity * (1 + 1e-9), value / equity  # gross cap, at the fill
    assert book.cash >= 0.6 * equity * (1 - 1e-9), book.cash / equity  # cash floor, at the fill
