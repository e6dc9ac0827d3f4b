"""Node names, defined once: wiring and routers refer to these constants, never to string literals."""

from __future__ import annotations

from typing import Final, Literal

OBSERVE: Final = "observe"
SETTLE: Final = "settle"
SCREEN: Final = "screen"
ANALYSE: Final = "analyse"
DECIDE: Final = "decide"
RISK: Final = "risk"
EXECUTE: Final = "execute"
RECORD: Final = "record"

AfterScreen = Literal["analyse", "decide"]
AfterRisk = Literal["execute", "record"]
