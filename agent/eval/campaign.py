"""A campaign's cells: what `tradegraph eval` runs, each with a stable run id, and the settings an LLM cell
runs with.

Contracts:
- The campaign file is `agent.backtest.preset`'s schema (documented in docs/evaluation.md, "Campaign
  files"): its rule strategies and its `[[llm]]` variants, each on every window and symbol group.
- Cells are ordered window by window, then symbol group, then the rule strategies and the LLM variants in
  file order; `index` is that position.
- `campaign_id` is stable for the same file content and the same settings (secrets left out), so rerunning
  an interrupted campaign finds its cells' runs and continues; changing either starts a new campaign.
  A cell's run id is `<campaign id>.<index>`.
- An LLM cell's settings are the campaign's (its `[risk]` merged), with the cell's symbols and the
  campaign's timeframe, the variant's `[llm]` fields over the configuration's, and the conventions the
  graph's paper broker knows: initial cash, the proportional fee, slippage, the fixed fee and the initial
  position. Fill timing is the graph's own (a decision at a bar's close fills at the next open) and the
  exchange's precision and minimums always apply; `llm_conventions_note` says so where they differ.
- Cutoffs: a window is `before` the model's training cutoff when it ends on or before it, `after` when it
  starts on or after it, else `spans`; without a cutoff, `unknown`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from agent.backtest.preset import (
    Cell,
    LlmVariant,
    Preset,
    StrategySpec,
    WindowSpec,
    load_preset,
    preset_settings,
    symbol_groups,
)
from agent.config import Settings
from agent.market.candles import utc_timestamp
from agent.runs.lifecycle import check_run_id, stable_run_id

CellKind = Literal["rule", "llm"]
CutoffSide = Literal["before", "after", "spans", "unknown"]


@dataclass(frozen=True)
class EvalCell:
    """One run of the campaign: a rule strategy or an LLM variant on one window and symbol group."""

    index: int
    window: WindowSpec
    symbols: tuple[str, ...]
    rule: StrategySpec | None = None
    variant: LlmVariant | None = None

    @property
    def kind(self) -> CellKind:
        """`rule` or `llm` (an LLM variant, including hybrids)."""
        return "rule" if self.variant is None else "llm"

    @property
    def strategy(self) -> str:
        """The strategy's name in the campaign file."""
        if self.variant is not None:
            return self.variant.name
        assert self.rule is not None
        return self.rule.name

    @property
    def group(self) -> str:
        """The symbol group, e.g. `BTC/USDT` or `BTC/USDT+ETH/USDT`."""
        return "+".join(self.symbols)

    @property
    def key(self) -> str:
        """`window/symbols/strategy`, unique in the campaign."""
        return f"{self.window.name}/{self.group}/{self.strategy}"

    def as_rule_cell(self) -> Cell:
        """The preset's cell of a rule strategy (for `agent.backtest.preset.cell_request`)."""
        assert self.rule is not None
        return Cell(self.window, self.symbols, self.rule)


@dataclass(frozen=True)
class Campaign:
    """A loaded campaign file: its schema, where it is, its id and its cells."""

    preset: Preset
    path: Path
    id: str
    cells: tuple[EvalCell, ...]

    def run_id(self, cell: EvalCell) -> str:
        """The run id of `cell` (module contract)."""
        return check_run_id(f"{self.id}.{cell.index:03d}")

    @property
    def strategies(self) -> list[str]:
        """Every strategy name (rules, then LLM variants), in file order."""
        return [s.name for s in self.preset.strategies] + [v.name for v in self.preset.llm]

    @property
    def trials(self) -> int:
        """The number of strategies tried, for the selection-bias correction."""
        return self.preset.statistics.variants_tried or len(self.strategies)


def load_campaign(path: str | Path, settings: Settings) -> Campaign:
    """Read and validate the campaign file, its id and its cells (module contract)."""
    file = Path(path)
    preset = load_preset(file)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    key = {"file": digest, "settings": _fingerprint(settings)}
    campaign_id = stable_run_id("ev", preset.campaign.name[:10], key)
    return Campaign(preset, file, campaign_id, tuple(_cells(preset)))


def _cells(preset: Preset) -> list[EvalCell]:
    cells: list[EvalCell] = []
    for window in preset.windows:
        for group in symbol_groups(preset):
            for rule in preset.strategies:
                cells.append(EvalCell(len(cells), window, group, rule=rule))
            for variant in preset.llm:
                cells.append(EvalCell(len(cells), window, group, variant=variant))
    return cells


def _fingerprint(settings: Settings) -> dict[str, Any]:
    secret = {"api_key", "secret", "password"}
    dumped: dict[str, Any] = settings.model_dump(
        mode="json", exclude={"exchange": secret, "llm": {"api_key"}, "database_url": True}
    )
    return json.loads(json.dumps(dumped, sort_keys=True, default=str))  # type: ignore[no-any-return]


def llm_settings(campaign: Campaign, cell: EvalCell, settings: Settings) -> Settings:
    """The settings an LLM cell runs with (module contract)."""
    variant = cell.variant
    assert variant is not None
    preset = campaign.preset
    merged = preset_settings(preset, settings)
    fields = (
        "profile",
        "model",
        "thinking",
        "prompt_mode",
        "context_tokens",
        "max_tokens",
        "leakage_control",
        "concurrency",
    )
    llm = merged.llm.model_copy(
        update={f: getattr(variant, f) for f in fields if getattr(variant, f) is not None}
    )
    c = preset.conventions
    broker: dict[str, Any] = {}
    if c.initial_cash is not None:
        broker["initial_cash"] = c.initial_cash
    if c.fee is not None:
        broker["taker_fee"] = c.fee
        broker["maker_fee"] = c.fee
    if c.slippage_bps is not None:
        broker["slippage_bps"] = c.slippage_bps
    fixed = c.fixed_fee
    broker["fixed_fee"] = float(fixed[cell.symbols[0]] if isinstance(fixed, dict) else fixed)
    position = c.initial_position
    if isinstance(position, dict):
        broker["initial_position"] = {s: float(position[s]) for s in cell.symbols if position.get(s, 0) > 0}
    elif position > 0:
        broker["initial_position"] = {s: float(position) / len(cell.symbols) for s in cell.symbols}
    update: dict[str, Any] = {
        "symbols": list(cell.symbols),
        "timeframe": preset.campaign.timeframe,
        "strategy": variant.strategy,
        "llm": llm,
        "broker": merged.broker.model_copy(update=broker),
    }
    if variant.rule is not None:
        update["fallback_strategy"] = variant.rule
    return merged.model_copy(update=update)


def llm_conventions_note(campaign: Campaign) -> str | None:
    """What the LLM cells do differently from the campaign's conventions, or None."""
    c = campaign.preset.conventions
    if not campaign.preset.llm:
        return None
    parts = []
    if c.fill not in (None, "next_open"):
        parts.append(f"they fill at the next bar's open, not {c.fill}")
    if not c.exchange_rules:
        parts.append("the exchange's amount step and minimums apply")
    if not parts:
        return None
    return "LLM cells decide at a bar's close as the daemon does: " + "; ".join(parts) + "."


def cutoff_of(campaign: Campaign, cell: EvalCell) -> str | None:
    """The training cutoff that applies to `cell`: the variant's, else the campaign's (None for rules)."""
    if cell.variant is None:
        return campaign.preset.campaign.training_cutoff
    return cell.variant.training_cutoff or campaign.preset.campaign.training_cutoff


def cutoff_side(window: WindowSpec, cutoff: str | None) -> CutoffSide:
    """Where `window` lies against `cutoff` (module contract)."""
    if cutoff is None:
        return "unknown"
    seen = utc_timestamp(cutoff) + pd.Timedelta(days=1)  # the cutoff day is the last day seen
    start, end = utc_timestamp(window.start), utc_timestamp(window.end)
    if end <= seen:
        return "before"
    if start >= seen:
        return "after"
    return "spans"
