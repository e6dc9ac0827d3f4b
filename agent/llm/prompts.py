"""The fixed wording of the decision prompt: system message, block headers and the volatile tail sections.

Contracts:
- `system_message` depends only on configuration (base timeframe, leakage control), never on the bar, the
  symbol or the account: it is byte-identical on every tick and for every symbol, so it always opens the
  cached prefix.
- It tells the model the data layout (oldest → newest, the column legend), the JSON fields of
  `agent.llm.schema.TradeDecision` and that stop_loss/take_profit are absolute prices in the prompt's price
  units; the actions allowed now and the maximum exposure are stated by `question`, at the very end.
- In the stateless prompt mode (`ContextInput.portfolio` None) the tail shows the market and the question
  only: no account figures, positions or past decisions, so a prompt depends on the bars up to t alone.
- `tail_text` renders the volatile tail from point-in-time inputs only: the bars given (last = t), the
  portfolio and marks, and the decisions with `bar_ts <= t` (later ones are never shown). Prices go through
  the `Disclosure` (rebased and aliased under leakage control); other symbols' positions are then
  summarised without names. A held symbol without a mark raises `DataError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from agent.errors import DataError
from agent.llm.bars import Bars
from agent.llm.encoding import COLUMN_DOCS, format_int, format_price, format_ratio, format_sig, header_line
from agent.llm.leakage import Disclosure
from agent.llm.protocol import ContextInput
from agent.llm.schema import INVALIDATION_MAX, RATIONALE_MAX
from agent.portfolio import PortfolioState

RATIONALE_SHOWN = 120
"""Characters of each past rationale shown."""

LEVEL_TITLES = {
    "1w": "Weekly",
    "1d": "Daily",
    "1h": "Hourly",
    "4h": "4-hour",
    "15m": "15-minute",
    "5m": "5-minute",
    "1m": "1-minute",
}

_ANONYMISED = """\
- Names, dates and price levels are disguised: the asset goes by an alias, days are numbered relative to a \
hidden day 0, prices are rescaled (a reference price is 100) and volumes are in relative units. Reason from \
the data shown; do not try to identify the asset or the period.
"""

_SYSTEM = """\
You are a disciplined spot trader of crypto assets. You receive the market history and the account state \
for ONE symbol and answer with ONE decision as a JSON object.

How to read the data
- Every series is ordered oldest → newest. Times are UTC; a bar is labelled by the time it opens.
- History comes in blocks from coarse to fine: weekly bars (completed Monday-to-Sunday weeks), daily bars \
(completed days), then {base} bars up to the latest closed bar. Lines starting with # open a new year, \
month or day.
- One line per bar, columns named by the first line of each block:
{legend}
- After the history: an indicator snapshot per timeframe, the account, open positions with their exit \
plans, your recent decisions and how they turned out, then the question with the actions allowed now and \
the maximum exposure.
{anonymised}
Your answer is exactly one JSON object and nothing else, with these fields:
- "symbol": the symbol exactly as the question names it.
- "action": "buy" (raise the position to target_exposure), "sell" (reduce it to target_exposure), \
"close" (exit fully, target_exposure 0) or "hold" (change nothing); only the actions the question allows.
- "target_exposure": fraction of equity to hold in this symbol afterwards, from 0 to the maximum the \
question states (spot only: no leverage, no short positions).
- "confidence": from 0 to 1.
- "stop_loss": absolute price, in the same units as the prices in this prompt, below the current price; \
required for buy, may be null otherwise.
- "take_profit": absolute price in the same units, above the current price, or null.
- "invalidation": what would prove the idea wrong (at most {invalidation_max} characters).
- "rationale": a short plain-text reason (at most {rationale_max} characters).
Example: {{"symbol": "{example}", "action": "hold", "target_exposure": 0.0, "confidence": 0.4, \
"stop_loss": null, "take_profit": null, "invalidation": "", "rationale": "No clear edge."}}
Every trade pays fees and slippage: trade only when the expected move clearly exceeds them. A risk layer \
checks every decision and may shrink or reject it.
"""


@lru_cache(maxsize=32)
def system_message(base_timeframe: str, anonymised: bool) -> str:
    """The system message (static for a configuration)."""
    legend = "\n".join(f"  {name} = {doc}" for name, doc in COLUMN_DOCS.items())
    legend += "\n  na = not enough history for the indicator yet"
    if anonymised:
        legend = legend.replace("base units", "relative units")
    return _SYSTEM.format(
        base=LEVEL_TITLES.get(base_timeframe, base_timeframe).lower(),
        legend=legend,
        anonymised=_ANONYMISED if anonymised else "",
        example="ASSET_X" if anonymised else "XYZ/USDT",
        invalidation_max=INVALIDATION_MAX,
        rationale_max=RATIONALE_MAX,
    )


def intro(name: str, quote: str, base_timeframe: str) -> str:
    """First line of the user message (stable per symbol)."""
    return f"Market data for {name} (spot, priced in {quote}), base timeframe {base_timeframe}.\n"


def block_header(level: str, label: str, columns: Sequence[str]) -> str:
    """The title and column line of one history block (no dates: it never changes)."""
    kind = {"1w": "completed weeks", "1d": "completed days"}.get(level, "up to the latest closed bar")
    return f"\n## {LEVEL_TITLES.get(level, level)} bars ({kind})\n" + header_line(label, columns)


@dataclass(frozen=True)
class PositionView:
    """One open position as the prompt shows it (values already in prompt units)."""

    name: str
    value: str
    """Market value in the quote currency."""
    entry: str
    entry_price: str
    mark: str
    pnl: str
    stop: str
    take_profit: str
    invalidation: str


@dataclass(frozen=True)
class DecisionView:
    """One past decision as the prompt shows it."""

    when: str
    action: str
    target: str
    confidence: str
    outcome: str
    rationale: str


def snapshot_section(latest: str, rows: Sequence[tuple[str, Sequence[str]]], periods: Sequence[str]) -> str:
    """The current bar, indicators per timeframe (prompt price units) and the partial periods so far."""
    lines = [
        f"\n## Now\nLatest closed bar t: {latest} (t-5 below = five bars before t).\n",
        "tf close ema20 ema50 rsi14 macd signal hist atr14 vr\n",
    ]
    lines += [" ".join((tf, *cells)) + "\n" for tf, cells in rows]
    lines += [p + "\n" for p in periods]
    return "".join(lines)


def account_section(quote: str, cash: str, equity: str, exposure: str, gross: str, extra: str) -> str:
    """Cash, equity and exposure."""
    return (
        f"\n## Account ({quote})\ncash {cash}, equity {equity}, exposure to this symbol {exposure}, "
        f"gross exposure {gross}{extra}\n"
    )


def positions_section(positions: Sequence[PositionView], others: str = "") -> str:
    """Open positions with their stored exit plans."""
    out = "\n## Open positions\n"
    if not positions and not others:
        return out + "none\n"
    if positions:
        out += "symbol value entry entry_price mark pnl stop take_profit | invalidation\n"
        for p in positions:
            out += (
                f"{p.name} {p.value} {p.entry} {p.entry_price} {p.mark} {p.pnl} {p.stop} "
                f"{p.take_profit} | {p.invalidation or '-'}\n"
            )
    return out + (others + "\n" if others else "")


def decisions_section(decisions: Sequence[DecisionView]) -> str:
    """Recent decisions, oldest → newest, with outcomes known at this bar."""
    out = "\n## Your recent decisions (oldest → newest; outcome = realised return once closed)\n"
    if not decisions:
        return out + "none\n"
    out += "bar action target confidence outcome | rationale\n"
    return out + "".join(
        f"{d.when} {d.action} {d.target} {d.confidence} {d.outcome} | {d.rationale}\n" for d in decisions
    )


def question(name: str, latest: str, allowed: Sequence[str], max_exposure: float) -> str:
    """The closing question: what to decide, the allowed actions and the exposure cap."""
    return (
        f"\n## Decision\nDecide for {name} at the close of the bar {latest}. "
        f"Allowed actions now: {', '.join(allowed)}. target_exposure must be between 0 and "
        f"{max_exposure:.2f}. stop_loss and take_profit are absolute prices in this prompt's price units. "
        f'Answer with one JSON object only, with "symbol": "{name}".\n'
    )


# --- the volatile tail ---------------------------------------------------------------------------


STATELESS_NOTE = (
    "\n## Account\nNot shown (stateless prompt): judge the market alone. target_exposure is the share of "
    "equity you would hold; the risk layer sizes it to the account and its limits.\n"
)
"""The tail's account section in the stateless prompt mode (`llm.prompt_mode`)."""


def tail_text(
    ctx: ContextInput,
    disc: Disclosure,
    frames: Sequence[tuple[str, Bars]],
    tf: pd.Timedelta,
    max_decisions: int,
) -> str:
    """Snapshot, account, positions, recent decisions and the question (everything after the history).

    Args:
        ctx: the point-in-time input.
        disc: names, dates and price units of this prompt.
        frames: (timeframe, bars with indicators) finest first; the first frame's last row is bar t.
        tf: the base timeframe (past times are shown as `t-5`: five base bars before t).
        max_decisions: how many recent decisions to show.
    """
    base = frames[0][1]
    t = base.time(-1)
    latest = disc.moment(t)
    snapshot = [(name, _snapshot_cells(_last_row(f), disc)) for name, f in frames if len(f)]
    periods = [_period(base, t, span, disc) for span in _PERIODS]
    if ctx.portfolio is None:  # stateless: the market alone; the risk layer applies the account's limits
        return (
            snapshot_section(latest, snapshot, [p for p in periods if p])
            + STATELESS_NOTE
            + question(disc.name, latest, [str(a) for a in ctx.allowed_actions], ctx.max_exposure)
        )
    pf, close = ctx.portfolio, float(base["close"][-1])
    return (
        snapshot_section(latest, snapshot, [p for p in periods if p])
        + _account(ctx, pf, disc, close)
        + _positions(ctx, pf, disc, close, t, tf)
        + decisions_section(_decisions(ctx, disc, t, tf, max_decisions))
        + question(disc.name, latest, [str(a) for a in ctx.allowed_actions], ctx.max_exposure)
    )


_SNAPSHOT_COLUMNS = (
    "close",
    "ema20",
    "ema50",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "atr",
    "volume",
    "vol_mean",
)


def _last_row(bars: Bars) -> dict[str, float]:
    """The snapshot's columns at the last bar."""
    return {c: bars[c][-1] for c in _SNAPSHOT_COLUMNS}


def _snapshot_cells(row: Mapping[str, float], disc: Disclosure) -> list[str]:
    def price(x: float) -> str:
        return format_price(disc.price(x))

    def small(x: float) -> str:
        return format_sig(disc.price(x), 3)

    vr = row["volume"] / row["vol_mean"] if row["vol_mean"] > 0 else math.nan
    return [
        price(row["close"]),
        price(row["ema20"]),
        price(row["ema50"]),
        format_int(row["rsi"]),
        small(row["macd"]),
        small(row["macd_signal"]),
        small(row["macd_hist"]),
        price(row["atr"]),
        format_ratio(vr),
    ]


_PERIODS = {"24h": 86_400_000_000_000, "7D": 7 * 86_400_000_000_000}
"""The spans the snapshot summarises, in ns."""


def _period(base: Bars, t: pd.Timestamp, span: str, disc: Disclosure) -> str:
    """`last 24h: chg +1.20%, high …, low …` over the bars opened in (t − span, t]."""
    cut = int(np.searchsorted(base.ts, t.value - _PERIODS[span], side="right"))  # bars <= t − span: [0, cut)
    if cut == 0:
        return ""
    close = base["close"]
    chg = float(close[-1]) / float(close[cut - 1]) - 1.0
    high = float(np.fmax.reduce(base["high"][cut:]))  # NaN-skipping, as pandas' max
    low = float(np.fmin.reduce(base["low"][cut:]))
    return (
        f"last {span.lower().replace('7d', '7 days')}: chg {chg:+.2%}, "
        f"high {format_price(disc.price(high))}, "
        f"low {format_price(disc.price(low))}"
    )


def _marks(ctx: ContextInput, pf: PortfolioState, close: float) -> dict[str, float]:
    marks = dict(ctx.marks)
    marks.setdefault(ctx.symbol, close)
    missing = sorted(s for s in pf.positions if s not in marks)
    if missing:
        raise DataError(f"no mark price for held symbol {missing[0]}: the context needs one per position")
    return marks


def _account(ctx: ContextInput, pf: PortfolioState, disc: Disclosure, close: float) -> str:
    marks = _marks(ctx, pf, close)
    equity = pf.equity(marks)
    gross = sum(p.value(marks[s]) for s, p in pf.positions.items()) / equity if equity > 0 else 0.0
    extra = f", fees paid {pf.fees_paid:.2f}"
    if pf.peak_equity > 0:
        extra += f", drawdown from peak {min(0.0, equity / pf.peak_equity - 1):.2%}"
    if pf.day_start_equity > 0:
        extra += f", since day start {equity / pf.day_start_equity - 1:+.2%}"
    return account_section(
        disc.quote,
        f"{pf.cash:.2f}",
        f"{equity:.2f}",
        f"{pf.exposure(ctx.symbol, marks):.1%}",
        f"{gross:.1%}",
        extra,
    )


def _bars_ago(ts_ms: int, t: pd.Timestamp, tf: pd.Timedelta) -> str:
    """`t-5`: how many base bars before the latest bar t a moment lies (`t-0` = t)."""
    return f"t-{max(0, round((t.value - ts_ms * 1_000_000) / tf.value))}"  # as Timedelta / Timedelta


def _positions(
    ctx: ContextInput, pf: PortfolioState, disc: Disclosure, close: float, t: pd.Timestamp, tf: pd.Timedelta
) -> str:
    marks, views, others = _marks(ctx, pf, close), [], []
    for symbol in sorted(pf.positions):
        pos = pf.positions[symbol]
        if disc.anonymised and symbol != ctx.symbol:
            others.append(pos.value(marks[symbol]))
            continue
        mark = marks[symbol]

        def price(x: float | None) -> str:
            return "none" if x is None else format_price(disc.price(x))

        views.append(
            PositionView(
                name=disc.name if symbol == ctx.symbol else symbol,
                value=f"{pos.value(mark):.2f}",
                entry=_bars_ago(pos.entry_ts, t, tf),
                entry_price=price(pos.avg_price),
                mark=price(mark),
                pnl=f"{mark / pos.avg_price - 1:+.2%}" if pos.avg_price > 0 else "na",
                stop=price(pos.stop_loss),
                take_profit=price(pos.take_profit),
                invalidation=_clean(disc.text(pos.invalidation), INVALIDATION_MAX),
            )
        )
    equity = pf.equity(marks)
    summary = (
        f"other holdings: {len(others)} position(s), {sum(others) / equity:.1%} of equity"
        if others and equity > 0
        else ""
    )
    return positions_section(views, summary)


def _decisions(
    ctx: ContextInput, disc: Disclosure, t: pd.Timestamp, tf: pd.Timedelta, limit: int
) -> list[DecisionView]:
    t_ms = t.value // 1_000_000
    known = [d for d in ctx.recent_decisions if d.bar_ts <= t_ms][-limit:] if limit > 0 else []
    return [
        DecisionView(
            when=_bars_ago(d.bar_ts, t, tf),
            action=str(d.action),
            target=f"{d.target_exposure:.2f}",
            confidence=f"{d.confidence:.2f}",
            outcome="open" if d.realised_return is None else f"{d.realised_return:+.2%}",
            rationale=_clean(disc.text(d.rationale), RATIONALE_SHOWN),
        )
        for d in known
    ]


def _clean(text: str, limit: int) -> str:
    """One line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
