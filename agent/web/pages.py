"""The dashboard's page bodies, rendered from the query layer's records (`agent.runs.queries`,
`agent.web.state`). Pure: records in, escaped HTML out (`agent.web.html`); the routes fetch the records.

Contracts:
- Model text (rationales, reasoning, prompts, answers, abstain reasons, errors) is shown as text through
  `agent.web.html.esc`; a `<script>` in a rationale reads as `<script>`.
- The decisions table body carries `data-live` and the newest id (`data-after`), so the dashboard script
  adds decisions that arrive through `/api/v1/events` at the top without a reload (built with
  `textContent`, never `innerHTML`).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.db.controls import Controls
from agent.runs.queries import Book, DecisionDetail, DecisionRow, LLMStats, Page, RunRow, SymbolPnl
from agent.web.html import RATIONALE_SHOWN, Safe, definitions, esc, fmt, link, stamp, table, when
from agent.web.state import DaemonView

DECISION_HEADERS = (
    "id",
    "bar",
    "run",
    "symbol",
    "source",
    "action",
    "target",
    "final",
    "confidence",
    "clamps",
    "orders",
    "rationale",
)
COMPARED = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "volatility",
    "trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "turnover",
    "fees_paid",
    "final_equity",
    "decisions",
    "abstentions",
    "bars",
    "days",
)


def health(view: DaemonView) -> Safe:
    """The daemon's health card."""
    state = f'<span id="health-state" class="state-{esc(view.state)}">{esc(view.state)}</span>'
    tick = view.last_tick
    error = view.last_error
    rows: list[tuple[str, object]] = [
        ("state", Safe(state)),
        ("why", Safe(f'<span id="health-reason">{esc(view.reason or "")}</span>')),
        ("run", link(f"/runs/{view.run_id}", view.run_id) if view.run_id else ""),
        (
            "lease holder",
            f"{view.holder or 'none'} ({view.mode or '-'} on {view.host or '-'}, pid {view.pid})",
        ),
        ("heartbeat", f"{fmt(view.heartbeat_age_s, 3)} s ago" if view.heartbeat_age_s is not None else ""),
        ("daemon clock (simulated in a replay)", when(view.clock_ms)),
        (
            "last tick: bar (daemon clock)",
            Safe(f'<span id="last-bar">{esc(when(tick.bar_ts if tick else None))}</span>'),
        ),
        ("last tick: done at (real clock)", stamp(tick.finished_at) if tick else ""),
        ("next wake-up (real clock)", when(view.next_tick_ms)),
        ("next bar to tick (daemon clock)", when(view.next_bar_ts)),
        (
            "last error",
            f"{error.status} at {when(error.bar_ts)}: {error.reason or ''} ({stamp(error.finished_at)})"
            if error
            else "",
        ),
        ("note", view.note or ""),
    ]
    return Safe('<div class="card"><h2>Daemon</h2>' + definitions(rows) + "</div>")


def controls(state: Controls, control_token: bool) -> Safe:
    """The kill switch and pause buttons with their state and who set it."""
    parts = ['<div class="card"><h2>Controls</h2>']
    for name, label, change in (
        ("kill_switch", "kill switch", state.kill_switch),
        ("pause", "new entries paused", state.pause),
    ):
        on = change is not None and change.active
        who = f" (set {'on' if on else 'off'} by {change.who} at {stamp(change.at)})" if change else ""
        parts.append(
            f'<p><span id="{name}-state">{esc(label)}: {"ON" if on else "off"}</span>{esc(who)} '
            f'<button data-control="{name}" data-active="{"false" if on else "true"}" id="{name}-toggle">'
            f"{'turn off' if on else 'turn on'}</button></p>"
        )
    if not control_token:
        parts.append('<p class="muted">controls need the token: open this page with ?token=...</p>')
    parts.append(
        '<p>by <input id="who" value="dashboard" maxlength="64"></p><p id="control-status"></p></div>'
    )
    return Safe("".join(parts))


def book_card(book: Book) -> Safe:
    """Equity, cash, today's PnL and the open positions with their exit plans."""
    head = definitions(
        [
            ("last bar", when(book.bar_ts)),
            ("equity", book.equity),
            ("cash", book.cash),
            ("today's PnL", book.today_pnl),
        ]
    )
    rows = [
        (p.symbol, p.amount, p.avg_price, p.mark_price, p.pnl, p.stop_loss, p.take_profit)
        for p in book.positions
    ]
    positions = table(("symbol", "amount", "entry", "mark", "PnL", "stop loss", "take profit"), rows)
    return Safe(f'<div class="card"><h2>Book</h2>{head}<h3>Positions (exit plans)</h3>{positions}</div>')


def decision_rows(items: Sequence[DecisionRow]) -> list[tuple[object, ...]]:
    """Timeline rows: rationale cut, clamps by kind, orders as side amount @ price."""
    return [
        (
            link(f"/decisions/{d.id}", d.id),
            when(d.bar_ts),
            link(f"/runs/{d.run_id}", d.run_id),
            d.symbol,
            d.source,
            d.action + (" (abstained)" if d.abstained else ""),
            d.target_exposure,
            d.final_exposure,
            d.confidence,
            ", ".join(c.kind for c in d.clamps),
            ", ".join(f"{o.side} {o.amount:.6g} @ {fmt(o.price)} {o.status}" for o in d.orders),
            esc(d.rationale or d.abstain_reason or "", RATIONALE_SHOWN),
        )
        for d in items
    ]


def decisions(page: Page[DecisionRow], run_id: str | None, newest: int | None) -> Safe:
    """The timeline, live at the top (unless `newest` is negative: an older page), with a link to the
    older page."""
    run = f' data-run="{esc(run_id)}"' if run_id else ""
    attrs = f'data-live="decisions" data-after="{newest or 0}"{run}' if newest is None or newest >= 0 else ""
    body = table(DECISION_HEADERS, decision_rows(page.items), body_attrs=attrs, table_id="decisions")
    more = ""
    if page.next_cursor is not None:
        query = f"?before={page.next_cursor}" + (f"&run_id={run_id}" if run_id else "")
        more = str(link(f"/decisions{query}", "older"))
    return Safe(f"{body}<p>{more}</p>")


def decision(detail: DecisionDetail) -> Safe:
    """One decision: the row, the exact prompt, the raw answer, reasoning, latency, tokens, cache state."""
    d = detail.decision
    call = detail.call
    facts = definitions(
        [
            ("run", link(f"/runs/{d.run_id}", d.run_id)),
            ("bar", when(d.bar_ts)),
            ("symbol", d.symbol),
            ("source", d.source),
            ("action", d.action),
            ("target", d.target_exposure),
            ("final exposure", d.final_exposure),
            ("confidence", d.confidence),
            ("abstained", d.abstained),
            ("abstain reason", d.abstain_reason or ""),
            ("model", detail.model or ""),
            ("latency ms", detail.latency_ms),
            ("prompt tokens", detail.prompt_tokens),
            ("completion tokens", detail.completion_tokens),
            (
                "cache",
                "" if call is None else ("hit (response cache)" if call.from_cache else "miss (asked)"),
            ),
            ("finish reason", call.finish_reason if call else ""),
            ("call error", call.error if call else ""),
            ("prompt hash", detail.prompt_hash or ""),
        ]
    )
    clamps = table(("kind", "detail"), [(c.kind, c.detail) for c in d.clamps])
    orders = table(
        ("side", "amount", "price", "status", "reason"),
        [(o.side, o.amount, o.price, o.status, o.reason) for o in d.orders],
    )
    prompt = "".join(f"<h4>{esc(role)}</h4><pre>{esc(text)}</pre>" for role, text in detail.messages)
    answer = esc(call.response_text) if call and call.response_text is not None else ""
    reasoning = esc(detail.reasoning or (call.reasoning if call else None) or "")
    return Safe(
        f"{facts}<h2>Rationale</h2><pre id=rationale>{esc(d.rationale or '')}</pre>"
        f"<h2>Clamps</h2>{clamps}<h2>Orders</h2>{orders}<h2>Reasoning</h2><pre>{reasoning}</pre>"
        f"<h2>Raw answer</h2><pre>{answer}</pre><h2>Prompt</h2>{prompt or '<p>no prompt stored</p>'}"
    )


def runs(page: Page[RunRow], filters: dict[str, str]) -> Safe:
    """The run list with filters and compare checkboxes."""
    inputs = "".join(
        f'{esc(name)} <input name="{esc(name)}" value="{esc(filters.get(name, ""))}" size=10> '
        for name in ("kind", "status", "strategy")
    )
    form = f'<form method=get action="/runs">{inputs}<button>filter</button></form>'
    rows = [
        (
            Safe(f'<input type=checkbox name=ids value="{esc(r.id)}" form=compare>'),
            link(f"/runs/{r.id}", r.id),
            r.kind,
            r.strategy,
            ", ".join(r.symbols),
            r.timeframe,
            r.status,
            stamp(r.created_at),
            r.metrics.get("total_return"),
            r.metrics.get("sharpe"),
            r.metrics.get("max_drawdown"),
            r.metrics.get("trades"),
        )
        for r in page.items
    ]
    headers = (
        "",
        "id",
        "kind",
        "strategy",
        "symbols",
        "tf",
        "status",
        "created",
        "return",
        "sharpe",
        "max dd",
        "trades",
    )
    nav = []
    base = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    if page.offset > 0:
        nav.append(link(f"/runs?{base}&offset={max(page.offset - page.limit, 0)}", "newer"))
    if page.total is not None and page.offset + page.limit < page.total:
        nav.append(link(f"/runs?{base}&offset={page.offset + page.limit}", "older"))
    compare = '<form id=compare method=get action="/runs/compare"><button>compare selected</button></form>'
    return Safe(f"{form}<p>{page.total} runs</p>{compare}{table(headers, rows)}<p>{' '.join(nav)}</p>")


def compare(rows: Sequence[RunRow]) -> Safe:
    """Two or more runs side by side on the same metric set."""
    headers = ["metric", *(r.id for r in rows)]
    body = [(name, *(r.metrics.get(name) for r in rows)) for name in COMPARED]
    info = [("strategy", *(r.strategy for r in rows)), ("kind", *(r.kind for r in rows))]
    return table(headers, [*info, *body])


def run(row: RunRow, book: Book, charts_html: str, pnl: Sequence[SymbolPnl] = ()) -> Safe:
    """A run: identity, metrics, book and its charts."""
    facts = definitions(
        [
            ("kind", row.kind),
            ("strategy", row.strategy),
            ("symbols", ", ".join(row.symbols)),
            ("timeframe", row.timeframe),
            ("status", row.status),
            ("created", stamp(row.created_at)),
            ("finished", stamp(row.finished_at)),
            ("error", row.error or ""),
        ]
    )
    metrics = table(("metric", "value"), [(k, v) for k, v in row.metrics.items()])
    more = link(f"/decisions?run_id={row.id}", "decisions of this run")
    symbols = table(
        ("symbol", "fills", "bought", "sold", "fees", "held value", "PnL"),
        [(p.symbol, p.fills, p.bought, p.sold, p.fees, p.held_value, p.pnl) for p in pnl],
        table_id="symbol-pnl",
    )
    return Safe(
        f'<div class="cards"><div class="card">{facts}<p>{more}</p></div>{book_card(book)}</div>'
        f"<h2>PnL by symbol</h2>{symbols}{charts_html}<h2>Metrics</h2>{metrics}"
    )


def llm(stats: LLMStats) -> Safe:
    """The model traffic: calls per hour, latency percentiles, tokens, cache use, abstentions, circuit."""
    facts = definitions(
        [
            ("calls looked at (newest)", stats.calls_seen),
            ("asked (not cached)", stats.real_calls),
            ("response-cache hits", stats.cache_hits),
            ("cache hit rate", stats.cache_hit_rate),
            ("prefix-cache hit rate (cached prompt tokens)", stats.prefix_cache_hit_rate),
            ("errors", stats.errors),
            ("latency p50 ms", stats.latency_p50_ms),
            ("latency p90 ms", stats.latency_p90_ms),
            ("latency p99 ms", stats.latency_p99_ms),
            ("prompt tokens", stats.prompt_tokens),
            ("completion tokens", stats.completion_tokens),
            ("cached prompt tokens", stats.cached_tokens),
            ("circuit", stats.circuit),
        ]
    )
    hours = table(("hour (UTC)", "calls"), [(c.label, c.count) for c in stats.calls_per_hour[-48:]])
    reasons = table(("abstention reason", "decisions"), [(c.label, c.count) for c in stats.abstentions])
    return Safe(
        f'<div class="cards"><div class="card">{facts}</div><div class="card">{reasons}</div>'
        f'<div class="card"><h3>Calls per hour</h3>{hours}</div></div>'
    )
