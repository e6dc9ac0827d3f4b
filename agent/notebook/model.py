"""One symbol, one bar, the model: the prompt it sees (`build_context`) and one decision (`ask_model`).

Contracts:
- `ask_model(symbol, at)` runs the agent graph for one tick through `agent.graph.factory.open_agent` (the
  factory the backtest, the daemon and `tradegraph tick` use) as a fresh run of kind `notebook` trading only
  `symbol`: allowance, context, gateway (cache and audit in `llm_calls`), risk layer, paper broker, ledger.
  It returns the recorded decision, the risk layer's clamps and the model's raw answer. With `llm.base_url`
  unset the embedded local model is started for the call and stopped afterwards.
- `build_context(symbol, at)` renders, without asking a model or recording anything, the prompt that
  `ask_model(symbol, at)` sends: the same fresh account (initial cash, no position, no past decision), the
  same allowance (actions and maximum exposure), the same candles up to bar t, budget and token counter
  (the endpoint's tokenizer when one is configured, else SmolLM2's), hence the same `prompt_hash`.
- The bar is the latest one that opened at or before `at` (None = the last bar of the data).
- `local_model()` starts the embedded server once for a whole session (`LocalModel.settings(...)` points
  calls at it): one start instead of one per call, and llama.cpp's prompt cache stays warm between
  decisions. It is stopped by `stop()`, at the end of a `with` block, or when the interpreter exits. Its
  tokenizer is SmolLM2's, so prompts are the same as with the embedded model started per call.
"""

from __future__ import annotations

import atexit
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from agent.config import Settings
from agent.errors import DataError
from agent.notebook.common import SettingsLike, When, bar_at, cut_history, database, resolve_settings, to_ts

if TYPE_CHECKING:
    from agent.llm.local_server import LocalLLMServer

CLAMP_COLUMNS = ["kind", "field", "before", "after", "detail"]


@dataclass(frozen=True)
class ContextView:
    """The prompt for one symbol at one bar, as the model receives it."""

    symbol: str
    bar: pd.Timestamp
    """The last closed bar the model sees (open time, UTC)."""
    messages: tuple[dict[str, str], ...]
    tokens: int
    """Prompt tokens as counted for the budget (chat-template overhead included)."""
    budget: int | None
    prompt_hash: str
    blocks: pd.DataFrame
    """History shown per resolution: bars, first and last bar (real UTC dates)."""

    @property
    def text(self) -> str:
        """The messages as one readable text."""
        return "\n\n".join(f"=== {m['role']} ===\n{m['content']}" for m in self.messages)


def build_context(
    symbol: str, at: When = None, *, history_bars: int | None = None, settings: SettingsLike = None
) -> ContextView:
    """The exact prompt `ask_model(symbol, at)` sends, with its token count; no model is asked.

    `history_bars` keeps only that many bars before `at` (None = all stored bars; see `ask_model`).

    Example:
        >>> ctx = tg.build_context("BTC/USDT", "2025-09-18 12:00")  # doctest: +SKIP
        >>> print(ctx.text[-1200:]); ctx.tokens, ctx.budget  # doctest: +SKIP
    """
    from agent.broker.paper import initial_state
    from agent.graph.factory import load_source, trading_rules
    from agent.graph.nodes import ATR_WINDOW
    from agent.llm.context import MarketContextBuilder, budget_from_settings
    from agent.llm.protocol import ContextInput
    from agent.llm.tokens import counter_for_settings
    from agent.market.indicators import atr
    from agent.risk.allowance import allowance
    from agent.risk.book import TradeCosts
    from agent.risk.breakers import kill_switch_active
    from agent.risk.inputs import Market

    s = resolve_settings(settings, symbols=[symbol])
    full = load_source(s)
    t = bar_at(full, symbol, at, s.timeframe)
    hist = cut_history(full, s, history_bars, t).history(symbol, t)
    marks = {symbol: float(hist["close"].iloc[-1])}
    tail = hist.iloc[-ATR_WINDOW:]
    value = atr(tail["high"].to_numpy(), tail["low"].to_numpy(), tail["close"].to_numpy(), s.risk.atr_period)
    last_atr = float(value[-1]) if math.isfinite(value[-1]) else math.nan
    book = initial_state(s.broker.initial_cash)
    rules = trading_rules(s)[symbol]
    market = Market(symbol, t, marks[symbol], last_atr, rules, TradeCosts.of_market(rules, s.broker))
    allowed = allowance(market, book, marks, s.risk, kill_switch_active(s.risk.kill_switch_file))
    max_len = _max_model_len(s)
    builder = MarketContextBuilder.from_settings(s, counter=counter_for_settings(s), max_model_len=max_len)
    budget = budget_from_settings(s, max_len)
    ctx = ContextInput(symbol, hist, book, marks, (), allowed.actions, allowed.max_exposure)
    built = builder.render(ctx, budget)
    blocks = pd.DataFrame(
        [{"block": k, "bars": v[0], "first": v[1], "last": v[2]} for k, v in built.mix.items()],
        columns=["block", "bars", "first", "last"],
    )
    p = built.prompt
    return ContextView(symbol, to_ts(t), p.messages, p.estimated_tokens, budget, p.prompt_hash, blocks)


@dataclass(frozen=True)
class ModelAnswer:
    """One decision as recorded: the model's proposal, the risk layer's verdict and every clamp."""

    run_id: str
    decision: pd.Series
    """The `decisions` row: source, action and target_exposure (as proposed), final_exposure (sent to the
    broker; NaN = nothing sent), confidence, stop_loss/take_profit (after the risk layer), rationale,
    abstained and abstain_reason, model, tokens, latency, prompt_hash, reasoning."""
    clamps: pd.DataFrame
    """One row per clamp, rejection or breaker: kind, field, before, after, detail."""
    response_text: str | None
    """The model's raw answer (its last attempt); None when no model was asked."""

    @property
    def verdict(self) -> str:
        """One line: what was proposed and what the risk layer let through."""
        d = self.decision
        final = "nothing sent" if pd.isna(d["final_exposure"]) else f"target {d['final_exposure']:.3f} sent"
        why = f" (abstained: {d['abstain_reason']})" if d["abstained"] else ""
        clamps = f"{len(self.clamps)} clamp(s)"
        return f"{d['source']} proposed {d['action']} {d['target_exposure']}{why} → {final}, {clamps}"


def ask_model(
    symbol: str, at: When = None, *, history_bars: int | None = None, settings: SettingsLike = None
) -> ModelAnswer:
    """One decision for `symbol` at bar `at` through the agent graph, recorded as a run of kind `notebook`.

    `history_bars` keeps only that many bars before `at` (like the daemon's `--history-bars`): prompts build
    faster on long histories; None = every stored bar, as `tradegraph backtest`/`demo` do.

    Example:
        >>> ans = tg.ask_model("BTC/USDT", "2025-09-18 12:00")  # doctest: +SKIP
        >>> ans.verdict; ans.clamps[["kind", "detail"]]  # doctest: +SKIP
    """
    from agent.db.models import LLMCall
    from agent.evaluation.frames import decisions_frame
    from agent.graph.factory import load_source, open_agent
    from agent.runs.lifecycle import RunKind, fail_run, finish_run, new_run_id

    s = resolve_settings(settings, symbols=[symbol])
    full = load_source(s)
    t = bar_at(full, symbol, at, s.timeframe)
    source = cut_history(full, s, history_bars, t)
    run_id = new_run_id(RunKind.NOTEBOOK)
    with database(s) as factory:
        with open_agent(
            s, run_id=run_id, kind=RunKind.NOTEBOOK, strategy="llm", source=source, factory=factory,
            checkpoint=False, start_ts=t, end_ts=t,
        ) as runner:  # fmt: skip
            outcome = runner.tick(t)
        if outcome.status == "done":
            finish_run(factory, run_id)
        else:
            fail_run(factory, run_id, outcome.reason or outcome.status)
        rows = decisions_frame(factory, run_id)
        if rows.empty:
            raise DataError(f"no decision was recorded for {symbol} at {to_ts(t)}: {outcome.reason}")
        row = rows.iloc[0]
        call_id = row["llm_call_id"]
        with factory() as session:
            call = session.get(LLMCall, int(call_id)) if pd.notna(call_id) else None
            answer = call.response_text if call is not None else None
    clamps = pd.DataFrame(list(row["clamps"] or []), columns=CLAMP_COLUMNS)
    return ModelAnswer(run_id, row, clamps, answer)


def _max_model_len(s: Settings) -> int | None:
    """The endpoint's context length, asked only when the budget depends on it (as `open_agent` does)."""
    if s.llm.context_tokens is not None or s.llm.base_url is None:
        return None
    from agent.llm.discovery import discover

    return discover(s.llm.base_url, s.llm).max_model_len


@dataclass(frozen=True)
class LocalModel:
    """The embedded SmolLM2 server (llama.cpp on 127.0.0.1), kept running across calls."""

    server: LocalLLMServer

    @property
    def base_url(self) -> str:
        """The server's OpenAI-compatible base URL."""
        return self.server.base_url

    def settings(self, **llm: Any) -> dict[str, Any]:
        """Settings overrides that send every call to this server, plus other `[llm]` keys.

        Example:
            >>> model = tg.local_model()  # doctest: +SKIP
            >>> tg.ask_model("BTC/USDT", settings=model.settings(context_tokens=1600))  # doctest: +SKIP
        """
        return {"llm": {**llm, "profile": "llamacpp", "base_url": self.base_url}}

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        self.server.stop()

    def __enter__(self) -> LocalModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def local_model(settings: SettingsLike = None) -> LocalModel:
    """Start the embedded model for this session (`[llm] local_port, local_n_ctx, local_threads` apply).

    Example:
        >>> with tg.local_model() as model:  # doctest: +SKIP
        ...     answer = tg.ask_model("BTC/USDT", settings=model.settings(context_tokens=1600))
    """
    from agent.llm.local_server import LocalLLMServer

    server = LocalLLMServer.from_settings(resolve_settings(settings).llm)
    server.start()
    atexit.register(server.stop)
    return LocalModel(server)
