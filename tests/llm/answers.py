"""Answers the LLM tests share: a schema-valid decision as the model writes it."""

from __future__ import annotations

from typing import Any

GOOD: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "action": "hold",
    "target_exposure": 0.0,
    "confidence": 0.3,
    "stop_loss": None,
    "take_profit": None,
    "invalidation": "",
    "rationale": "range bound",
}
