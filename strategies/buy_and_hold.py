"""`buy_and_hold`: fully invested from the first bar; the benchmark every backtest report shows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies.base import FloatArray, Strategy


class BuyAndHold(Strategy):
    """Target exposure 1.0 on every bar (entered at the second bar's open, never left)."""

    name = "buy_and_hold"

    def warmup_bars(self) -> int:
        """No indicator, no warm-up."""
        return 0

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Ones."""
        return np.ones(len(candles), dtype=np.float64)
