"""Paper broker: settles each bar for a portfolio with the backtest engine's fill semantics (pure)."""

from agent.broker.models import (
    Bar,
    BarOutcome,
    BrokerEvent,
    FillRecord,
    FillTerms,
    MarketRules,
    OrderRecord,
    PendingTarget,
    client_order_id,
)
from agent.broker.paper import initial_state, process_bar

__all__ = [
    "Bar",
    "BarOutcome",
    "BrokerEvent",
    "FillRecord",
    "FillTerms",
    "MarketRules",
    "OrderRecord",
    "PendingTarget",
    "client_order_id",
    "initial_state",
    "process_bar",
]
