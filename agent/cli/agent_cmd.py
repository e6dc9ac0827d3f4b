"""Operator commands for the agent: `demo`, `tick`, `portfolio`, `decisions`, `graph`.

- `demo` is the main job: the embedded local LLM, the agent in paper mode over the last bars of the bundled
  data, a report, and a summary with the report's path — offline, on embedded defaults.
- `tick` runs one paper cycle now: the last closed bar (live exchange through ccxt, or replay), holding the
  database's lease (`agent.daemon.lease`), so it is refused while a daemon runs and never writes beside one.
- `portfolio` and `decisions` read the ledger of a run (default: the most recent run). Model text
  (rationales, abstention reasons, clamp details) and run ids are shown literally through
  `agent.textsafe.for_terminal`: never read as Rich markup, control characters escaped.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.dates import iso_date
from agent.cli.verbosity import quiet_native_logs
from agent.config import load_settings
from agent.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session, sessionmaker

    from agent.config import Settings
    from agent.graph.runner import TickOutcome
    from agent.market.source import CandleSource


def register(app: typer.Typer) -> None:
    """Add the agent's commands to the CLI."""
    app.command("demo")(demo)
    app.command("tick")(tick)
    app.command("portfolio")(portfolio)
    app.command("decisions")(decisions)
    app.command("graph")(graph)


def demo(
    bars: int = typer.Option(6, min=2, max=500, help="hourly bars to trade, ending at the last bundled bar"),
    symbols: str = typer.Option("BTC/USDT,ETH/USDT", help="comma-separated symbols from the bundled data"),
    reports: Path | None = typer.Option(None, help="folder for the report (default: <data_dir>/reports)"),
) -> None:
    """Run the agent with the embedded local LLM over the last bars of the bundled data (offline)."""
    from rich.console import Console

    from agent.graph.backtest import run_agent_backtest
    from agent.runs.lifecycle import RunKind

    settings = load_settings()
    overrides: dict[str, object] = {"symbols": [s.strip() for s in symbols.split(",") if s.strip()]}
    if settings.llm.base_url is None and settings.llm.context_tokens is None:
        # the 135M model on a CPU: keep prompts short enough for the demo's time bound; the embedded server
        # answers one request at a time, so one in flight keeps queueing out of each call's deadline
        overrides["llm"] = settings.llm.model_copy(
            update={"context_tokens": 2000, "max_tokens": 160, "concurrency": 1}
        )
    settings = load_settings(**overrides, timeframe="1h", exchange={"id": "replay"}, strategy="llm")
    quiet_native_logs()
    console = Console()
    where = settings.llm.base_url or "the embedded SmolLM2-135M (llama.cpp, 127.0.0.1)"
    console.print(
        f"[bold]tradegraph demo[/]: agent in paper mode on {', '.join(settings.symbols)}, "
        f"last {bars} hourly bars of the bundled Binance data, model: {where}"
    )
    result = run_agent_backtest(
        settings,
        strategy="llm",
        start=None,
        end=None,
        kind=RunKind.DEMO,
        reports_dir=reports,
        last_bars=bars,
        console=console,
    )
    _summary(console, result.metrics)
    console.print(f"report: [bold]{result.report}[/]")
    console.print(f"run id: {result.run_id}  (tradegraph decisions --run-id {result.run_id})")


def _summary(console: Console, metrics: dict[str, Any]) -> None:
    from rich.table import Table

    from agent.evaluation.agent_report import fmt

    s, h = metrics.get("strategy", {}), metrics.get("buy_and_hold", {})
    table = Table(title="summary")
    table.add_column("")
    table.add_column("agent", justify="right")
    table.add_column("buy & hold", justify="right")
    for key, label, kind in (
        ("total_return", "return", "pct"),
        ("max_drawdown", "max drawdown", "pct"),
        ("fees_paid", "fees", "num"),
        ("final_equity", "final equity", "num"),
    ):
        table.add_row(label, fmt(s.get(key), kind), fmt(h.get(key), kind))
    for key in ("decisions", "llm_calls", "cache_hits", "abstentions", "fills", "prompt_tokens"):
        table.add_row(key.replace("_", " "), fmt(s.get(key)), "")
    console.print(table)


def tick(
    strategy: str = typer.Option(None, help="llm | hybrid | a rule strategy (default: settings.strategy)"),
    run_id: str = typer.Option(None, help="paper run to advance (default: paper-<strategy>-<timeframe>)"),
    at: str = typer.Option(
        None, callback=iso_date, help="replay only: process the bar that opened at this time (ISO, UTC)"
    ),
) -> None:
    """Run one paper cycle now: refresh data, then process the last closed bar for every symbol."""
    from agent.cli.strategies_cmd import check_strategy
    from agent.graph.factory import load_source
    from agent.market.candles import utc_timestamp
    from agent.runs.lifecycle import check_run_id, paper_run_id
    from agent.textsafe import for_plain_terminal

    settings = load_settings()
    strategy = strategy or settings.strategy
    check_strategy(strategy)
    run_id = check_run_id(run_id, "--run-id") if run_id else paper_run_id(strategy, settings.timeframe)
    if settings.exchange.id != "replay":
        if at:
            raise ConfigError("--at is for replay only; with a live exchange the tick is the last closed bar")
        from agent.asyncutil import run_sync
        from agent.errors import TradegraphError
        from agent.market.async_fetch import download_symbols

        results = run_sync(download_symbols(settings))
        failed = [r for r in results.values() if isinstance(r, TradegraphError)]
        if failed:
            raise failed[0]
    source = load_source(settings)
    quiet_native_logs()
    bar = min(source.last_ts(s) for s in settings.symbols)
    if at:
        bar = int(utc_timestamp(at).value // 1_000_000)
    out = _tick_holding_the_lease(settings, run_id, strategy, source, bar)
    print(
        f"{out.run_id} bar {_iso(out.bar_ts)}: {out.status}"
        + (f" ({for_plain_terminal(out.reason)})" if out.reason else "")
        + (f", {out.orders} orders, {out.fills} fills, equity {out.equity:,.2f}" if out.equity else "")
    )


TICK_LEASE_TTL_S = 120.0
"""How long the lease of a `tradegraph tick` that died without releasing it blocks another writer (a dead
process on the same host is recognised at once)."""


def _tick_holding_the_lease(
    settings: Settings, run_id: str, strategy: str, source: CandleSource, bar: int
) -> TickOutcome:
    """One tick of `run_id` while holding the database's lease: refused (`LeaseHeld`) while a daemon or
    another tick writes, and fenced (`LeaseLost`, nothing written) if the lease is taken over meanwhile."""
    from agent.daemon.lease import Holder, Lease
    from agent.db.session import open_db
    from agent.graph.factory import open_agent

    engine, factory = open_db(settings.db_url)
    try:
        lease = Lease(factory, Holder.current(), TICK_LEASE_TTL_S)
        lease.acquire(run_id, "tick")
        try:
            with open_agent(
                settings, run_id=run_id, kind="paper", strategy=strategy, source=source, factory=factory
            ) as runner:
                return runner.tick(bar)
        finally:
            lease.release("tick done")
    finally:
        engine.dispose()


def _iso(ms: int) -> str:
    import pandas as pd

    return str(pd.Timestamp(ms, unit="ms", tz="UTC"))[:16]


def _run_id(factory: sessionmaker[Session], run_id: str | None) -> str:
    from sqlalchemy import select

    from agent.db.models import Run

    with factory() as session:
        if run_id:
            if session.get(Run, run_id) is None:
                raise ConfigError(f"no run {run_id!r} in the database (see: tradegraph runs list)")
            return run_id
        latest = session.scalar(select(Run.id).order_by(Run.created_at.desc()).limit(1))
    if latest is None:
        raise ConfigError("the database holds no run yet (try: tradegraph demo)")
    return str(latest)


def portfolio(run_id: str = typer.Option(None, help="run to show (default: the most recent)")) -> None:
    """Positions, cash, equity and PnL of a run after its last processed bar."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from agent.db.session import open_db
    from agent.evaluation.frames import equity_frame, positions_frame
    from agent.textsafe import for_terminal

    settings = load_settings()
    engine, factory = open_db(settings.db_url, migrate=False)  # read-only: never migrates
    try:
        rid = _run_id(factory, run_id)
        eq = equity_frame(factory, rid)
        pos = positions_frame(factory, rid)
    finally:
        engine.dispose()
    console = Console()
    if eq.empty:
        console.print(for_terminal(f"run {rid}: no bar processed yet"))
        return
    last = eq.iloc[-1]
    initial = settings.broker.initial_cash
    console.print(
        Text.assemble(
            "run ",
            for_terminal(rid, "bold"),
            f" after bar {str(eq.index[-1])[:16]} UTC: cash {last.cash:,.2f}, "
            f"equity {last.equity:,.2f}, PnL {last.equity - initial:+,.2f} "
            f"({(last.equity / initial - 1) * 100:+.2f}%), fees {last.fees_paid:,.2f}",
        )
    )
    table = Table(title="positions")
    for col in ("symbol", "amount", "avg price", "mark", "value", "PnL", "stop", "take profit"):
        table.add_column(col)
    for p in pos.itertuples():
        table.add_row(
            str(p.symbol),
            f"{p.amount:.6g}",
            f"{p.avg_price:,.2f}",
            f"{p.mark_price:,.2f}",
            f"{p.value:,.2f}",
            f"{p.pnl:+,.2f}",
            _opt(p.stop_loss),
            _opt(p.take_profit),
        )
    console.print(table)


def _opt(value: object) -> str:
    """A number of a frame cell as `1,234.56`; `—` when missing (None, NaN or not a number)."""
    return f"{value:,.2f}" if isinstance(value, Real) and value == value else "—"


def _number(value: object, spec: str) -> str:
    """A frame cell formatted with `spec`; 0 when it holds no number (an unfilled order's None)."""
    return format(value if isinstance(value, Real) else 0, spec)


def _clamps_text(clamps: object) -> str:
    """A decision's recorded clamps as `kind: detail; ...` (a list of dicts; anything else shows none)."""
    if not isinstance(clamps, list):
        return ""
    return "; ".join(f"{c.get('kind')}: {c.get('detail')}" for c in clamps if isinstance(c, dict))


def decisions(
    run_id: str = typer.Option(None, help="run to show (default: the most recent)"),
    limit: int = typer.Option(20, min=1, help="how many of the latest decisions"),
) -> None:
    """Recent decisions with their rationale, the risk layer's clamps and the resulting orders."""
    from rich.console import Console
    from rich.table import Table

    from agent.db.session import open_db
    from agent.evaluation.frames import decisions_frame, orders_frame
    from agent.textsafe import for_terminal

    settings = load_settings()
    engine, factory = open_db(settings.db_url, migrate=False)  # read-only: never migrates
    try:
        rid = _run_id(factory, run_id)
        dec = decisions_frame(factory, rid).tail(limit)
        orders = orders_frame(factory, rid)
    finally:
        engine.dispose()
    table = Table(title=for_terminal(f"decisions of {rid}"), show_lines=True)
    for col in (
        "bar (UTC)",
        "symbol",
        "source",
        "action",
        "target→final",
        "conf.",
        "rationale",
        "clamps",
        "orders (next open)",
    ):
        table.add_column(col, overflow="fold")
    for d in dec.itertuples():
        nxt = orders[(orders.symbol == d.symbol) & (orders.bar_ts > d.bar_ts)].head(1)
        order_text = (
            "; ".join(
                f"{str(o.side)} {_number(o.fill_amount, '.6g')} @ {_number(o.fill_price, ',.2f')} "
                f"({str(o.status)})"
                for o in nxt.itertuples()
            )
            if d.final_exposure is not None
            else ""
        )
        abst = f"[abstained: {d.abstain_reason}] " if d.abstained else ""
        clamps = _clamps_text(d.clamps)
        table.add_row(  # model text is data: Text cells are never read as markup
            str(d.date)[:16],
            for_terminal(d.symbol),
            for_terminal(d.source),
            for_terminal(d.action),
            f"{_opt(d.target_exposure)}→{_opt(d.final_exposure)}",
            _opt(d.confidence),
            for_terminal(abst + str(d.rationale or "")[:240]),
            for_terminal(clamps[:300]),
            for_terminal(order_text),
        )
    Console().print(table)


def graph() -> None:
    """Print the agent graph as a Mermaid diagram."""
    from agent.graph.build import mermaid

    print(mermaid())
