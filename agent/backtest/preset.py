"""Campaign presets: a TOML file of windows, symbols, rule strategies, costs and conventions, whose cells
(window x symbols x strategy) run through the backtest service (`agent.backtest.service`).

Contracts:
- The schema is documented in docs/evaluation.md ("Campaign files"); `tradegraph eval` reads the same files.
  Unknown keys, duplicate window or strategy names, an empty list of windows, symbols or strategies and bad
  values are a `ConfigError` with one line naming the file.
- Cells: every window x every symbol group x every strategy, in file order. `cells = "per_symbol"` makes one
  group per symbol (a protocol that trades one asset at a time), `"portfolio"` one group of all symbols.
- Each cell is one `BacktestRequest`: the window's start (inclusive) and end (exclusive), the campaign's
  timeframe, the strategy's spec and parameters, and the conventions: cash, initial position (a number is
  the fraction of equity held in the cell's assets at the first bar's open, split evenly; a table gives it
  per symbol), fill timing (the strategy's `fill`, else the campaign's, else the strategy's declared one),
  proportional fee, fixed fee (a number, or a table per symbol for per-symbol cells), slippage, exchange
  rules (false: no amount step, no minimums) and warm-up. The `[risk]` table is merged over the
  configuration's `[risk]` for every cell (e.g. breakers off, caps at 1).
- `run_preset` prepares and simulates every cell (no I/O beyond reading candles); `record_preset` runs each
  through `run_request`, so every cell is a recorded run with its report, like `tradegraph backtest`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.backtest.models import FillMode
from agent.backtest.runner import BacktestResult
from agent.backtest.service import BacktestRequest, Outcome, Prepared, prepare, run_request, simulate_prepared
from agent.config import RiskSettings, Settings
from agent.errors import ConfigError
from strategies.base import describe_validation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CampaignInfo(_Strict):
    """What the campaign is and what it trades."""

    name: str = Field(min_length=1)
    title: str = ""
    source: str = ""
    """Where the protocol is published (paper, code)."""
    timeframe: Literal["1m", "5m", "15m", "1h", "4h", "1d", "1w"]
    symbols: list[str] = Field(min_length=1)
    cells: Literal["per_symbol", "portfolio"] = "per_symbol"
    training_cutoff: str | None = None
    """The last date the model may have seen (UTC, ISO): windows after it test what it cannot remember;
    an LLM variant may declare its own."""


class Conventions(_Strict):
    """Costs and conventions of every cell; None = the configuration's (or the strategy's) own."""

    initial_cash: float | None = Field(None, gt=0)
    initial_position: float | dict[str, float] = 0.0
    fill: FillMode | None = None
    fee: float | None = Field(None, ge=0, le=0.1)
    fixed_fee: float | dict[str, float] = 0.0
    slippage_bps: float | None = Field(None, ge=0, le=1000)
    exchange_rules: bool = True
    warmup: int | None = Field(None, ge=0)


class WindowSpec(_Strict):
    """A named window: start inclusive, end exclusive (UTC dates or timestamps)."""

    name: str = Field(min_length=1)
    start: str
    end: str
    regime: str = ""
    """What the window is (bull, bear, sideways, after the model's cutoff, ...): a label for reports."""


class StrategySpec(_Strict):
    """A rule strategy of the campaign: a registry spec with its parameters."""

    name: str = Field(min_length=1)
    spec: str
    params: dict[str, Any] = Field(default_factory=dict)
    fill: FillMode | None = None


class LlmVariant(_Strict):
    """An LLM strategy of the campaign: the graph's `llm` (or `hybrid`, with a rule) under one set of model
    settings; a field left out is the configuration's `[llm]` value."""

    name: str = Field(min_length=1)
    strategy: Literal["llm", "hybrid"] = "llm"
    rule: str | None = None
    """The hybrid's rule strategy (a registry name, default parameters); only with strategy = "hybrid"."""
    profile: str | None = None
    model: str | None = None
    thinking: Literal["on", "off", "low"] | None = None
    prompt_mode: Literal["stateful", "stateless"] | None = None
    context_tokens: int | None = Field(None, ge=512)
    max_tokens: int | None = Field(None, ge=16)
    leakage_control: bool | None = None
    concurrency: int | None = Field(None, ge=1, le=256)
    """Requests in flight (1 for a server that answers one at a time, such as the embedded model)."""
    training_cutoff: str | None = None
    """This model's cutoff, if it differs from the campaign's."""

    @model_validator(mode="after")
    def _rule_with_hybrid(self) -> LlmVariant:
        if (self.strategy == "hybrid") != (self.rule is not None):
            raise ValueError(f"llm variant {self.name!r}: a rule is given exactly when strategy = 'hybrid'")
        return self


class Statistics(_Strict):
    """How a campaign's figures are tested: a stationary block bootstrap over bar returns."""

    samples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    block_bars: int | None = Field(None, ge=1)
    """Mean block length in bars; None = chosen from the data (Politis and White)."""
    seed: int = 20240101
    variants_tried: int | None = Field(None, ge=1)
    """Strategies tried in all, including those tried before and left out of the file (prompts, parameter
    sets); None = the strategies in the file. The deflated Sharpe ratio corrects for this many trials."""


class Preset(_Strict):
    """A whole campaign file."""

    campaign: CampaignInfo
    conventions: Conventions = Field(default_factory=Conventions)
    risk: dict[str, Any] = Field(default_factory=dict)
    """Merged over the configuration's `[risk]` for every cell."""
    windows: list[WindowSpec] = Field(min_length=1)
    strategies: list[StrategySpec] = Field(min_length=1)
    llm: list[LlmVariant] = Field(default_factory=list)
    """LLM variants, each run on every window and symbol group (`tradegraph eval`)."""
    statistics: Statistics = Field(default_factory=Statistics)

    @model_validator(mode="after")
    def _unique_names(self) -> Preset:
        for kind, names in (
            ("window", [w.name for w in self.windows]),
            ("strategy", [s.name for s in self.strategies] + [v.name for v in self.llm]),
        ):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{kind} {twice[0]!r} is listed more than once")
        if isinstance(self.conventions.fixed_fee, dict) and self.campaign.cells != "per_symbol":
            raise ValueError("a fixed fee per symbol needs cells = 'per_symbol'")
        return self


@dataclass(frozen=True)
class Cell:
    """One backtest of the campaign."""

    window: WindowSpec
    symbols: tuple[str, ...]
    strategy: StrategySpec

    @property
    def key(self) -> str:
        """`window/symbols/strategy`, unique in the campaign."""
        return f"{self.window.name}/{'+'.join(self.symbols)}/{self.strategy.name}"


@dataclass(frozen=True)
class CellRun:
    """A simulated cell: its prepared inputs, the strategy's result and buy & hold over the same bars."""

    cell: Cell
    prepared: Prepared
    result: BacktestResult
    hold: BacktestResult
    comparison: dict[str, dict[str, float]]


def load_preset(path: str | Path) -> Preset:
    """Read and validate a campaign file (module contract)."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"campaign file {file} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"campaign file {file}: {e}") from None
    try:
        return Preset.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"campaign file {file}: {describe_validation(e)}") from None


def symbol_groups(preset: Preset) -> list[tuple[str, ...]]:
    """The symbol groups of the campaign's cells: one per symbol, or one of all symbols (sorted)."""
    symbols = [s.upper() for s in preset.campaign.symbols]
    return [(s,) for s in symbols] if preset.campaign.cells == "per_symbol" else [tuple(sorted(symbols))]


def preset_cells(preset: Preset) -> list[Cell]:
    """Every window x symbol group x rule strategy, in file order."""
    groups = symbol_groups(preset)
    return [Cell(w, g, s) for w in preset.windows for g in groups for s in preset.strategies]


def cell_request(preset: Preset, cell: Cell) -> BacktestRequest:
    """The backtest request of one cell (module contract)."""
    c = preset.conventions
    return BacktestRequest(
        strategy=cell.strategy.spec,
        params=dict(cell.strategy.params),
        symbols=list(cell.symbols),
        timeframe=preset.campaign.timeframe,
        start=cell.window.start,
        end=cell.window.end,
        fill=cell.strategy.fill or c.fill,
        cash=c.initial_cash,
        fee=c.fee,
        slippage_bps=c.slippage_bps,
        warmup=c.warmup,
        fixed_fee=_per_cell(c.fixed_fee, cell.symbols),
        initial_position=_position(c.initial_position, cell.symbols),
        exchange_rules=c.exchange_rules,
    )


def preset_settings(preset: Preset, settings: Settings) -> Settings:
    """The configuration every cell runs with: its `[risk]` with the campaign's `[risk]` merged over it."""
    if not preset.risk:
        return settings
    try:
        risk = RiskSettings.model_validate(settings.risk.model_dump() | preset.risk)
    except ValidationError as e:
        raise ConfigError(f"campaign [risk]: {describe_validation(e)}") from None
    return settings.model_copy(update={"risk": risk})


def run_preset(
    preset: Preset, settings: Settings, on_cell: Callable[[CellRun], None] | None = None
) -> list[CellRun]:
    """Prepare and simulate every cell (each is checked before any runs); nothing is recorded."""
    merged = preset_settings(preset, settings)
    prepared = [(cell, prepare(cell_request(preset, cell), merged)) for cell in preset_cells(preset)]
    runs = []
    for cell, p in prepared:
        result, hold, comparison = simulate_prepared(p)
        run = CellRun(cell, p, result, hold, comparison)
        runs.append(run)
        if on_cell is not None:
            on_cell(run)
    return runs


def record_preset(preset: Preset, settings: Settings, reports_dir: Path | None) -> list[tuple[Cell, Outcome]]:
    """Run every cell through `run_request`: one recorded run (and report) per cell."""
    merged = preset_settings(preset, settings)
    cells = preset_cells(preset)
    for cell in cells:  # every cell is valid before the first run is recorded
        prepare(cell_request(preset, cell), merged)
    return [(cell, run_request(cell_request(preset, cell), merged, reports_dir)) for cell in cells]


def _per_cell(value: float | dict[str, float], symbols: tuple[str, ...]) -> float:
    if isinstance(value, dict):
        table = {s.upper(): v for s, v in value.items()}
        missing = [s for s in symbols if s not in table]
        if missing:
            raise ConfigError(f"campaign fixed_fee names no fee for {missing[0]}")
        return float(table[symbols[0]])
    return float(value)


def _position(value: float | dict[str, float], symbols: tuple[str, ...]) -> dict[str, float]:
    if isinstance(value, dict):
        table = {s.upper(): float(v) for s, v in value.items()}
        return {s: table[s] for s in symbols if table.get(s, 0.0) > 0}
    return {s: float(value) / len(symbols) for s in symbols} if value > 0 else {}
