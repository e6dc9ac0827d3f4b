"""Test helper: a small market and portfolio to run the risk layer against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.config import Settings
from agent.llm.schema import Action, TradeDecision
from agent.market.exchange import MarketRules
from agent.portfolio import PortfolioState, Position
from agent.risk.allowance import allowance
from agent.risk.book import TradeCosts
from agent.risk.inputs import Market, Proposal
from agent.risk.limits import apply_limits
from agent.risk.models import Allowance, RiskResult

BTC, ETH = "BTC/USDT", "ETH/USDT"
T0 = 1_726_704_000_000
PRICE = 60_000.0
ATR = 600.0  # a 2-ATR stop is 2% away: vol-target exposure = 0.02 / 0.02 = 1.0
RULES = MarketRules(BTC, 1e-5, 1e-5, 5.0, 0.001, 0.001)
_SETTINGS: dict[str, Settings] = {}


@dataclass
class World:
    """Portfolio, marks and settings for one decision about `symbol`."""

    cash: float = 10_000.0
    positions: dict[str, Position] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=lambda: {BTC: PRICE, ETH: 3_000.0})
    atr: float = ATR
    risk: dict[str, Any] = field(default_factory=dict)
    kill_switch: bool = False
    state_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        key = repr(sorted(self.risk.items()))
        if key not in _SETTINGS:
            _SETTINGS[key] = Settings(symbols=[BTC, ETH], risk=self.risk)
        return _SETTINGS[key]

    @property
    def portfolio(self) -> PortfolioState:
        base = PortfolioState(cash=self.cash, positions=self.positions)
        equity = base.equity(self.marks) if set(self.positions) <= set(self.marks) else self.cash
        extra = {"peak_equity": equity, "day_start_equity": equity, "day": 1, **self.state_extra}
        return base.with_changes(**extra)

    def market(self, symbol: str = BTC, atr: float | None = None) -> Market:
        """`symbol` at its mark, as the graph passes it (costs from the settings' fee and slippage)."""
        costs = TradeCosts.of_market(RULES, self.settings.broker)
        price = self.marks.get(symbol, float("nan"))
        return Market(symbol, T0, price, self.atr if atr is None else atr, RULES, costs)

    def allowance(self, symbol: str = BTC) -> Allowance:
        risk = self.settings.risk
        return allowance(self.market(symbol), self.portfolio, self.marks, risk, self.kill_switch)

    def limit(self, decision: TradeDecision, symbol: str = BTC, **kwargs: Any) -> RiskResult:
        """`decision` through `apply_limits`; `kwargs` are the `Proposal`'s other fields (source...)."""
        return apply_limits(
            Proposal(decision, **kwargs),
            self.allowance(symbol),
            self.market(symbol),
            self.portfolio,
            self.settings.risk,
            self.settings.symbols,
        )


def decision(action: str = "buy", target: Any = 0.3, **fields: Any) -> TradeDecision:
    """A decision built without validation, so adversarial values reach the risk layer."""
    values: dict[str, Any] = {
        "symbol": BTC,
        "action": Action(action) if action in Action._value2member_map_ else action,
        "target_exposure": target,
        "confidence": 0.8,
        "stop_loss": PRICE * 0.97,
        "take_profit": PRICE * 1.06,
        "invalidation": "",
        "rationale": "test",
    }
    values.update(fields)
    return TradeDecision.model_construct(**values)


def btc_held(
    amount: float = 0.05, stop: float | None = 57_000.0, take: float | None = 66_000.0
) -> dict[str, Position]:
    """A BTC position (0.05 BTC = 3,000 USDT at PRICE)."""
    return {BTC: Position(BTC, amount, 58_000.0, T0 - 3_600_000, stop, take, "held thesis")}


def kinds(result: RiskResult) -> list[str]:
    """The kinds of a result's events, in order."""
    return [e.kind for e in result.events]
