"""The strategy contract: point-in-time OHLCV in, target exposure per bar out.

Contracts:
- A strategy is a `Strategy` subclass with a unique `name`, a pydantic `Params` model (defaults, bounds
  as `ge`/`le`, a default sweep grid as `json_schema_extra=sweep(start, stop, step)`, cross-field
  rules as model validators) and a vectorised `signal(candles)`. It declares `params: ItsParams`, so the
  type checker knows its fields (the constructor checks the instance is a `Params`).
- Input: the canonical candle frame (UTC `DatetimeIndex` named `date` = bar open time, float64
  `open, high, low, close, volume`). Output: a float64 array aligned with the frame, the target exposure
  of a spot long position (fraction of equity, 0..1) that the strategy wants after each bar.
- Point in time: the value at bar t may use only rows <= t. It is decided at bar t's close and executed
  by the engine at bar t+1's open. `tradegraph check-lookahead` verifies this by truncating the data.
- Two class-level declarations name the strategy's kind (`agent.execution.conventions`):
  `style` = `target` (the default: the output is a target exposure, an order only when it changes) or
  `order_fraction` (the output is an order per bar in [-1, 1]: +f buys with f of the cash, -f sells f of
  the holdings, 0 does nothing); `fill_timing` = `next_open` (the default: decided at bar t's close) or
  `same_open` (decided at bar t's open and filled there: the engine then gives `signal` a frame with the
  `open` column only, so reading anything else is an error, never a silent peek).
- `exposure(candles)` is what callers use: it runs `signal` and checks the result. NaN, values outside
  [0, 1] ([-1, 1] for `order_fraction`) or a wrong length raise `StrategyError` (never clipped or filled
  silently); flat (or no order) is 0.0, also during indicator warm-up.
- Exit plan: every `Params` carries `stop_atr`, `take_profit_atr`, `trailing_atr` (ATR multiples; None =
  off) and `atr_period`; the engine turns them into price levels when a position is entered.
- Pure: no I/O and no state between calls; the same frame gives bit-identical output. Indicators come
  from TA-Lib.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict

from agent.errors import StrategyError
from agent.execution.conventions import SIGNAL_BOUNDS, FillTiming, OrderStyle

FloatArray = npt.NDArray[np.float64]


class StrategyParams(BaseModel):
    """Parameters every strategy has: the exit plan the engine applies to each entry."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    stop_atr: float | None = Field(None, gt=0, le=100, description="stop-loss this many ATRs below entry")
    take_profit_atr: float | None = Field(None, gt=0, le=100, description="take-profit ATRs above entry")
    trailing_atr: float | None = Field(None, gt=0, le=100, description="trailing stop ATRs below the high")
    atr_period: int = Field(14, ge=2, le=500, description="ATR period for the exit levels")


class Strategy(ABC):
    """Base class: subclasses set `name`, `Params` and implement `signal`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    style: ClassVar[OrderStyle] = "target"
    """What `signal` returns: target exposures, or order fractions (module contract)."""
    fill_timing: ClassVar[FillTiming] = "next_open"
    """When it decides: at the bar's close (filled at the next open), or at its open (filled there)."""

    def __init__(self, params: StrategyParams | None = None, **values: Any) -> None:
        """Build from a `Params` instance or from keyword values (validated; bad ones raise)."""
        if params is not None and values:
            raise TypeError("pass either params or keyword values, not both")
        self.params = params if params is not None else self.make_params(values)
        if not isinstance(self.params, self.Params):
            raise StrategyError(f"{self.name}: params must be {self.Params.__name__}")

    @classmethod
    def make_params(cls, values: dict[str, Any]) -> StrategyParams:
        """Validate raw values (strings are accepted, e.g. from the command line) into `Params`."""
        unknown = sorted(set(values) - set(cls.Params.model_fields))
        if unknown:
            known = ", ".join(cls.Params.model_fields)
            raise StrategyError(f"unknown parameter {unknown[0]!r} for {cls.name}; known: {known}")
        try:
            return cls.Params.model_validate(values)
        except ValidationError as e:
            raise StrategyError(f"{cls.name}: {describe_validation(e)}") from None

    @classmethod
    def default_grid(cls) -> dict[str, tuple[float, float, float]]:
        """Sweep ranges declared on the parameters: name -> (start, stop, step), stop inclusive."""
        grid: dict[str, tuple[float, float, float]] = {}
        for name, field in cls.Params.model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and "grid" in extra:
                grid[name] = _grid_bounds(f"{cls.name}.{name}", extra["grid"])
        return grid

    def warmup_bars(self) -> int:
        """Bars of history the indicators need before the signal is meaningful."""
        return int(self.params.atr_period) + 1

    @abstractmethod
    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Target exposure per bar (0..1), or order fraction (-1..1) for the `order_fraction` style, using
        only rows <= t for the value at t."""

    def exposure(self, candles: pd.DataFrame) -> FloatArray:
        """`signal(candles)` checked: float64, same length, finite and within the style's bounds."""
        out = np.ascontiguousarray(self.signal(candles), dtype=np.float64)
        if out.shape != (len(candles),):
            raise StrategyError(f"{self.name}: signal has shape {out.shape}, expected ({len(candles)},)")
        low, high = SIGNAL_BOUNDS[self.style]
        if len(out) and not (out.min() >= low and out.max() <= high):  # NaN fails both comparisons
            bad = ~np.isfinite(out) | (out < low) | (out > high)
            i = int(np.argmax(bad))
            what = "target exposure" if self.style == "target" else "order fraction"
            raise StrategyError(
                f"{self.name}: {what} {float(out[i])} at {candles.index[i]} is not within "
                f"[{low:g}, {high:g}] (return 0.0 for flat, also during warm-up)"
            )
        return out

    def describe(self) -> str:
        """`name(k=v, ...)`: the strategy's own parameters, plus the exit plan when one is set."""
        values = self.params.model_dump(exclude_none=True)
        if not any(k in values for k in ("stop_atr", "take_profit_atr", "trailing_atr")):
            values.pop("atr_period", None)
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in values.items())})"


def sweep(start: float, stop: float, step: float) -> JsonDict:
    """A default sweep grid for `Field(json_schema_extra=...)`: start..stop (inclusive) by step."""
    return {"grid": [start, stop, step]}


def _grid_bounds(where: str, declared: object) -> tuple[float, float, float]:
    """(start, stop, step) of a declared grid: three numbers, in a list (`sweep`) or a tuple."""
    if isinstance(declared, list | tuple) and len(declared) == 3:
        numbers = [float(v) for v in declared if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == 3:
            return numbers[0], numbers[1], numbers[2]
    raise StrategyError(f"{where}: grid must be (start, stop, step) numbers, got {declared!r}")


def describe_validation(e: ValidationError) -> str:
    """One line for the first problem in a pydantic error: which parameter, what value, what is allowed."""
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if not key:
        return str(err["msg"]).removeprefix("Value error, ")
    return f"invalid parameter {key}={err.get('input')!r}: {err['msg']}"


def prices(candles: pd.DataFrame, column: str = "close") -> FloatArray:
    """A column as a contiguous float64 array (what TA-Lib wants)."""
    return np.ascontiguousarray(candles[column].to_numpy(), dtype=np.float64)
