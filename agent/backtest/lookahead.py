"""Look-ahead check: does a strategy's signal at bar t change when the bars after t are removed?

Contracts:
- `sample_bars` picks cut points after the warm-up: half at bars where the full-data signal changes
  (entries and exits, where a leak matters most), half evenly spaced; seeded, so reruns check the same bars.
- For each cut c, the strategy runs on rows <= c only; every value at bars <= c must equal the full run's
  (within 1e-12). Each cut with a difference is one finding (the first differing bar).
- A point-in-time strategy produces no findings; any finding means it used data from after bar t.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.base import Strategy

TOLERANCE = 1e-12


def sample_bars(full: np.ndarray, warmup: int, samples: int, seed: int = 0) -> list[int]:
    """Cut points in [warmup, n - 2]: signal changes first, then evenly spaced bars."""
    n = len(full)
    lo, hi = min(max(warmup, 1), n - 1), n - 1
    if hi <= lo:
        return []
    rng = np.random.default_rng(seed)
    changes = np.flatnonzero(np.diff(full) != 0) + 1
    changes = changes[(changes >= lo) & (changes < hi)]
    picked = set(rng.choice(changes, size=min(len(changes), samples // 2), replace=False).tolist())
    spaced = np.linspace(lo, hi - 1, num=max(samples - len(picked), 0), dtype=np.int64)
    picked.update(int(i) for i in spaced)
    return sorted(picked)


def check_lookahead(
    strategy: Strategy, candles: pd.DataFrame, symbol: str, samples: int = 20, seed: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """(findings, number of cuts checked) for one symbol's candles."""
    full = strategy.exposure(candles)
    cuts = sample_bars(full, strategy.warmup_bars(), samples, seed)
    findings: list[dict[str, Any]] = []
    for cut in cuts:
        part = strategy.exposure(candles.iloc[: cut + 1])
        diff = np.flatnonzero(np.abs(part - full[: cut + 1]) > TOLERANCE)
        if len(diff):
            bar = int(diff[0])
            findings.append(
                {
                    "symbol": symbol,
                    "cut": candles.index[cut],
                    "bar": candles.index[bar],
                    "full": float(full[bar]),
                    "truncated": float(part[bar]),
                }
            )
    return findings, len(cuts)
