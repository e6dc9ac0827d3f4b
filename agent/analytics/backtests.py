"""Backtests as tools: run a strategy (built-in or user file) with parameters and costs, or a small sweep,
and read its metrics. Nothing is recorded.

Contracts:
- A backtest goes through `agent.backtest.service.prepare` and `simulate_prepared`: the same validation,
  data, history rule, costs and engine as `tradegraph backtest`, without the run row and the report (the
  `ask` agent is read-only). Settings supply every default; `fee` (a rate, 0.002 = 0.2%) and
  `slippage_bps` override them.
- Figures are `agent.runs.metrics.MetricSet` fields of the strategy and of buy & hold
  (`agent.backtest.baseline`, same costs), the one metric set of every run.
- A sweep is the product of the values given per parameter, at most `MAX_TRIALS` trials, run one by one
  and ranked by `rank_by` (descending; NaN last).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from agent.analytics.context import ToolContext
from agent.analytics.models import (
    Timeframe,
    ToolInput,
    ToolOutput,
    check_date,
    check_order,
    check_symbol,
    num,
)
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.backtest.service import Prepared

MAX_TRIALS = 50
FIGURES = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "trades", "win_rate",
           "fees_paid", "exposure", "final_equity", "bars")  # fmt: skip
"""The metric-set fields a backtest answer carries."""
Param = float | int | str | bool


class BacktestInput(ToolInput):
    """A strategy, its parameters, the market window and the costs."""

    strategy: str = Field(
        description="built-in name (sma_cross, ema_cross, macd, rsi_reversion, ...) or file.py:Class"
    )
    params: dict[str, Param] = Field(default_factory=dict)
    symbols: list[str] = Field(min_length=1, max_length=8)
    timeframe: Timeframe = "1h"
    start: str | None = None
    end: str | None = None
    fee: float | None = Field(None, ge=0, le=0.1, description="taker fee rate per fill, 0.002 = 0.2%")
    slippage_bps: float | None = Field(None, ge=0, le=1000)
    cash: float | None = Field(None, gt=0)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return sorted({check_symbol(s) for s in v})

    @field_validator("start", "end")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return check_date(v)

    @model_validator(mode="after")
    def _order(self) -> BacktestInput:
        check_order(self.start, self.end)
        return self


class BacktestResult(ToolOutput):
    """The strategy's figures beside buy & hold's, over the traded window."""

    strategy: str
    params: dict[str, Param | None]
    symbols: list[str]
    timeframe: str
    first: str
    last: str
    fee: float
    slippage_bps: float
    metrics: dict[str, float | None]
    buy_and_hold: dict[str, float | None]
    notes: list[str]


def prepared_for(ctx: ToolContext, a: BacktestInput) -> Prepared:
    """The request validated and its data loaded by the backtest service (`prepare`)."""
    from agent.backtest.service import BacktestRequest, prepare

    _known_symbols(ctx, a.symbols)
    request = BacktestRequest(
        strategy=a.strategy,
        params=dict(a.params),
        symbols=a.symbols,
        timeframe=a.timeframe,
        start=a.start,
        end=a.end,
        fee=a.fee,
        slippage_bps=a.slippage_bps,
        cash=a.cash,
    )
    return prepare(request, ctx.settings)


def backtest_tool(ctx: ToolContext, a: BacktestInput) -> BacktestResult:
    """Simulate the strategy with the engine of `tradegraph backtest` (not recorded) and read its metrics."""
    from agent.backtest.service import simulate_prepared
    from agent.runs.metrics import RunMetrics

    prepared = prepared_for(ctx, a)
    _, _, comparison = simulate_prepared(prepared)
    metrics = RunMetrics.of(comparison)
    hold = metrics.buy_and_hold
    idx = prepared.window.frames[prepared.symbols[0]].index
    traded = idx[idx >= prepared.window.trade_start]
    return BacktestResult(
        strategy=prepared.strategy.name,
        params=prepared.strategy.params.model_dump(),
        symbols=prepared.symbols,
        timeframe=prepared.timeframe,
        first=traded[0].isoformat(),
        last=traded[-1].isoformat(),
        fee=prepared.rules[0].taker_fee,
        slippage_bps=prepared.config.slippage_bps,
        metrics=_figures(metrics.strategy.numbers()),
        buy_and_hold=_figures(hold.numbers()) if hold else {},
        notes=[*prepared.notes, *metrics.warnings],
    )


def _figures(values: dict[str, float]) -> dict[str, float | None]:
    return {k: num(values[k]) for k in FIGURES}


def _known_symbols(ctx: ToolContext, symbols: list[str]) -> None:
    from agent.analytics.market_data import stored_symbols

    known = stored_symbols(ctx)
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise ConfigError(f"unknown symbol {unknown[0]!r}; stored symbols: {', '.join(known) or 'none'}")


RankBy = Literal["sharpe", "total_return", "cagr", "sortino", "max_drawdown"]


class SweepInput(BacktestInput):
    """A small grid: each parameter's values, every combination backtested."""

    grid: dict[str, list[Param]] = Field(
        description="parameter -> values, e.g. {'fast': [10, 20], 'slow': [50, 100]}"
    )
    rank_by: RankBy = "sharpe"

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Param]]) -> dict[str, list[Param]]:
        if not v or any(not values for values in v.values()):
            raise ValueError("grid needs at least one parameter with at least one value")
        trials = math.prod(len(values) for values in v.values())
        if trials > MAX_TRIALS:
            raise ValueError(f"grid has {trials} combinations; at most {MAX_TRIALS}")
        return v


class Trial(ToolOutput):
    """One combination's parameters and figures."""

    params: dict[str, Param | None]
    metrics: dict[str, float | None]


class SweepResult(ToolOutput):
    """Every trial, best first by `rank_by`."""

    strategy: str
    rank_by: RankBy
    trials: list[Trial]
    buy_and_hold: dict[str, float | None]


def sweep_tool(ctx: ToolContext, a: SweepInput) -> SweepResult:
    """Backtest every combination of the grid (not recorded), ranked."""
    names = list(a.grid)
    trials, hold = [], {}
    for values in itertools.product(*(a.grid[n] for n in names)):
        params = {**a.params, **dict(zip(names, values, strict=True))}
        one = BacktestInput.model_validate(a.model_dump(exclude={"grid", "rank_by"}) | {"params": params})
        res = backtest_tool(ctx, one)
        trials.append(Trial(params=res.params, metrics=res.metrics))
        hold = res.buy_and_hold

    def key(t: Trial) -> float:
        v = t.metrics.get(a.rank_by)
        return -math.inf if v is None else v

    trials.sort(key=key, reverse=True)
    return SweepResult(strategy=a.strategy, rank_by=a.rank_by, trials=trials, buy_and_hold=hold)
