"""One per-bar semantics: a rule strategy fills the same way whichever way it is run.

For every built-in strategy (`strategies.registry.BUILTINS`), without and with an exit plan (stop-loss,
take-profit and trailing stop), on BTC/USDT and ETH/USDT together (one shared cash balance) and over two
300-bar windows of the bundled 1h candles, every path must give the same fills (bar, symbol, side, amount,
price, fee, reason), the same cumulative fees and the same equity at every bar, bit for bit:

- `tradegraph backtest`: `agent.backtest.service.run_request`, which the command calls (the compiled engine);
- the notebook API: `agent.notebook.run_backtest` (`tg.run_backtest`, the engine) and
  `agent.notebook.run_agent` (`tg.run_agent`, the agent graph over the window as an agent backtest; its
  fills and equity are read back from the ledger);
- `tradegraph run --replay`: the daemon itself, `agent.daemon.Daemon` with `DaemonOptions(replay=True)`,
  run in this process on its simulated clock (scheduler, candle feed over the replay exchange, the agent
  graph and the ledger); its fills and equity are read back from the ledger.

All three use the default configuration (risk caps, cooldown, breakers, fees and slippage), so what is
compared is exactly what a user gets from the commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from agent.backtest.models import REASONS, SimResult
from agent.backtest.service import BacktestRequest, run_request
from agent.config import DEFAULT_DATA_DIR, Settings
from agent.daemon import Daemon, DaemonOptions
from agent.db.models import BalanceSnapshot, Fill, Order
from agent.db.session import open_db
from strategies.registry import BUILTINS

HOUR = 3_600_000
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
BARS = 300
DATA_END = 1758322800000
"""Close of the last bundled 1h bar (2025-09-19 22:00 + 1 h)."""
WINDOWS = {
    "last": (DATA_END - BARS * HOUR, DATA_END),
    "feb25": (1740009600000, 1740009600000 + BARS * HOUR),  # 2025-02-20: BTC falls from 98k to 78k
}
EXITS: dict[str, dict[str, float]] = {
    "none": {},
    "exits": {"stop_atr": 1.5, "take_profit_atr": 3.0, "trailing_atr": 2.5},
}

Fills = list[tuple[int, str, str, float, float, float, str]]


@dataclass(frozen=True)
class Path_:
    """What one path produced: fills in order, and per bar (open time) the equity and cumulative fees."""

    fills: Fills
    bars: list[int]
    equity: list[float]
    fees: list[float]


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    """A data folder whose `binance/` is the bundled sample (the daemon's feed writes its store beside it)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "binance").symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    return folder


def _settings(folder: Path, strategy: str) -> Settings:
    return Settings(
        symbols=SYMBOLS,
        timeframe="1h",
        strategy=strategy,
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'equivalence.db'}",
    )


def _from_sim(sim: SimResult) -> Path_:
    times = [int(t) for t in sim.index.as_unit("ms").asi8]
    fills: Fills = [
        (
            times[int(b)],
            sim.symbols[int(s)],
            "buy" if side > 0 else "sell",
            float(a),
            float(p),
            float(f),
            REASONS[int(r)],
        )
        for b, s, side, a, p, f, r in zip(
            sim.fill_bar,
            sim.fill_symbol,
            sim.fill_side,
            sim.fill_amount,
            sim.fill_price,
            sim.fill_fee,
            sim.fill_reason,
            strict=True,
        )
    ]
    fees, total, i = [], 0.0, 0
    for t in times:
        while i < len(fills) and fills[i][0] == t:
            total += fills[i][5]
            i += 1
        fees.append(total)
    return Path_(fills, times, [float(e) for e in sim.equity], fees)


def _from_ledger(url: str, run_id: str) -> Path_:
    engine, factory = open_db(url)
    try:
        with factory() as s:
            rows = s.execute(
                select(Fill.bar_ts, Fill.symbol, Fill.side, Fill.amount, Fill.price, Fill.fee, Order.reason)
                .join(Order, Fill.order_id == Order.id)
                .where(Fill.run_id == run_id)
                .order_by(Fill.id)
            ).all()
            snaps = s.execute(
                select(BalanceSnapshot.bar_ts, BalanceSnapshot.equity, BalanceSnapshot.fees_paid)
                .where(BalanceSnapshot.run_id == run_id)
                .order_by(BalanceSnapshot.bar_ts)
            ).all()
    finally:
        engine.dispose()
    fills: Fills = [(int(b), sym, side, a, p, f, str(r)) for b, sym, side, a, p, f, r in rows]
    return Path_(fills, [int(b) for b, _, _ in snaps], [e for _, e, _ in snaps], [f for _, _, f in snaps])


def _engine(settings: Settings, name: str, params: dict[str, Any], start: int, end: int) -> Path_:
    request = BacktestRequest(
        strategy=name,
        params={k: str(v) for k, v in params.items()},
        symbols=SYMBOLS,
        timeframe="1h",
        start=_iso(start),
        end=_iso(end),
    )
    return _from_sim(run_request(request, settings, None).result.sim)


def _notebook(settings: Settings, name: str, params: dict[str, Any], start: int, end: int) -> Path_:
    import agent as tg

    run = tg.run_backtest(name, SYMBOLS, "1h", _iso(start), _iso(end), settings=settings, **params)
    return _from_sim(run.result.sim)


def _notebook_agent(settings: Settings, name: str, params: dict[str, Any], start: int, end: int) -> Path_:
    """`tg.run_agent`: the agent graph over the window's bars, as an agent backtest; read from the ledger."""
    import agent as tg

    bars = (end - start) // HOUR
    run = tg.run_agent(SYMBOLS, bars, name, start=_iso(start), settings=settings, **params)
    return _from_ledger(settings.db_url, run.run_id)


def _daemon(settings: Settings, name: str, params: dict[str, Any], start: int, end: int) -> Path_:
    options = DaemonOptions(
        replay=True,
        speed=3600 * 1000,
        start=_iso(start),
        end=_iso(end),
        strategy=name,
        params=params,
        run_id="equivalence",
        lease_ttl_s=60,
    )
    result = Daemon(settings, options).run()
    assert result.finished, result
    return _from_ledger(settings.db_url, result.run_id)


def _same(a: Path_, b: Path_, what: str) -> None:
    assert a.bars == b.bars, f"{what}: bars differ"
    for i, (x, y) in enumerate(zip(a.fills, b.fills, strict=False)):
        assert x == y, f"{what}: fill {i} differs: {x} != {y}"
    assert len(a.fills) == len(b.fills), f"{what}: {len(a.fills)} != {len(b.fills)} fills"
    for i, (x, y) in enumerate(zip(a.equity, b.equity, strict=True)):
        assert x == y, f"{what}: equity at bar {i} ({_iso(a.bars[i])}) differs: {x!r} != {y!r}"
    assert a.fees == b.fees, f"{what}: cumulative fees differ"


def _cases() -> Iterator[Any]:
    for window in WINDOWS:
        for name in BUILTINS:
            for exits in EXITS:
                yield pytest.param(window, name, exits, id=f"{window}-{name}-{exits}")


@pytest.mark.slow
@pytest.mark.parametrize(("window", "name", "exits"), list(_cases()))
def test_backtest_daemon_and_notebook_fill_identically(
    data_folder: Path, window: str, name: str, exits: str
) -> None:
    start, end = WINDOWS[window]
    params = EXITS[exits]
    settings = _settings(data_folder, name)
    engine = _engine(settings, name, params, start, end)
    assert len(engine.bars) == BARS
    _same(engine, _notebook(settings, name, params, start, end), "backtest vs notebook")
    _same(engine, _notebook_agent(settings, name, params, start, end), "backtest vs tg.run_agent")
    _same(engine, _daemon(settings, name, params, start, end), "backtest vs daemon")


TIGHT = {
    "daily_loss_limit": 0.01,
    "max_drawdown": 0.04,
    "cooldown_bars": 6,
    "max_gross_exposure": 0.7,
    "min_cash_fraction": 0.35,
}
"""Limits tight enough to bind in a 300-bar window: breakers, cooldowns and the book's room at the fill."""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["macd", "bollinger_reversion"])
def test_breakers_cooldowns_and_the_book_room_bind_alike(data_folder: Path, name: str) -> None:
    start, end = WINDOWS["feb25"]
    params = {"stop_atr": 1.5, "trailing_atr": 2.5}
    settings = _settings(data_folder, name).model_copy(update={"risk": Settings(risk=TIGHT).risk})
    request = BacktestRequest(
        strategy=name,
        params={k: str(v) for k, v in params.items()},
        symbols=SYMBOLS,
        timeframe="1h",
        start=_iso(start),
        end=_iso(end),
    )
    sim = run_request(request, settings, None).result.sim
    assert sim.counters.refused > 0 and sim.counters.room > 0  # the limits did bind
    _same(
        _from_sim(sim), _daemon(settings, name, params, start, end), "backtest vs daemon under tight limits"
    )


# ---- restarts: the ledger reader rebuilds exactly what the per-bar semantics held -------------------------


def _ticks(settings: Settings, source: Any, run_id: str, times: list[int]) -> None:
    """Tick `times` with the runner the daemon uses, opened (created or resumed from the ledger) once."""
    from agent.graph.factory import open_agent

    with open_agent(
        settings, run_id=run_id, kind="daemon", source=source, params=EXITS["exits"], checkpoint=False
    ) as runner:
        for t in times:
            assert runner.tick(t).status == "done"


def _breaks(url: str, run_id: str) -> tuple[int, int]:
    """(a bar after which a position with a trailing stop is held, one after which an entry is pending)."""
    from agent.db.models import Decision, PositionSnapshot

    engine, factory = open_db(url)
    try:
        with factory() as s:
            held = s.scalars(
                select(PositionSnapshot.bar_ts)
                .where(PositionSnapshot.run_id == run_id)
                .order_by(PositionSnapshot.bar_ts)
            ).all()
            entries = s.scalars(
                select(Decision.bar_ts)
                .where(
                    Decision.run_id == run_id, Decision.action == "buy", Decision.final_exposure.is_not(None)
                )
                .order_by(Decision.bar_ts)
            ).all()
    finally:
        engine.dispose()
    return int(held[len(held) // 2]), int(entries[-1])


@pytest.mark.slow
def test_a_restarted_rule_run_continues_exactly_with_trailing_stops_and_pending_entries(
    data_folder: Path,
) -> None:
    from agent.graph.factory import load_source

    settings = _settings(data_folder, "ema_cross")
    source = load_source(settings)
    start, end = WINDOWS["feb25"]
    times = [t for t in source.bar_times(start, end)][:200]
    _ticks(settings, source, "whole", times)
    whole = _from_ledger(settings.db_url, "whole")
    assert {"trailing_stop", "stop_loss"} & {f[-1] for f in whole.fills}
    for i, cut in enumerate(_breaks(settings.db_url, "whole")):
        run_id = f"cut{i}"
        k = times.index(cut) + 1
        _ticks(settings, source, run_id, times[:k])
        _ticks(settings, source, run_id, times[k:])  # a new process: the book comes back from the ledger
        _same(whole, _from_ledger(settings.db_url, run_id), f"restart after bar {_iso(cut)}")


# ---- one baseline, and the same total return in every report ----------------------------------------------


class _NoPrompt:
    """A context builder that renders nothing (the fake gateway ignores the prompt)."""

    def build(self, ctx: Any, budget_tokens: int | None = None) -> Any:
        from agent.llm.protocol import Prompt

        return Prompt(
            messages=({"role": "user", "content": ctx.symbol},),
            prompt_hash=ctx.symbol,
            estimated_tokens=1,
            stable_prefix_chars=0,
        )


def _agent_run(settings: Settings, run_id: str, strategy: str, start: int, end: int) -> dict[str, Any]:
    """An agent run of `strategy` over [start, end) as `tradegraph backtest --strategy llm` runs it (a
    scripted model that always holds), its report written and its run finished; returns the report's
    metrics."""
    from agent.evaluation.agent_report import write_agent_report
    from agent.graph.factory import load_source, trading_rules
    from agent.graph.runner import open_runner
    from agent.runs.lifecycle import finish_run
    from agent.testing.fakes import FakeGateway
    from strategies.registry import build_strategy

    source = load_source(settings)
    engine, factory = open_db(settings.db_url)
    try:
        rule = build_strategy(strategy) if strategy != "llm" else None
        with open_runner(
            settings,
            run_id=run_id,
            kind="agent_backtest",
            strategy=strategy,
            source=source,
            rules=trading_rules(settings),
            gateway=FakeGateway(),
            builder=_NoPrompt(),
            rule=rule,
            checkpoint=False,
            factory=factory,
        ) as runner:
            for t in source.bar_times(start, end):
                assert runner.tick(t).status == "done"
        path, metrics = write_agent_report(
            Path(settings.data_dir) / run_id,
            factory,
            run_id,
            source,
            settings,
            trading_rules(settings),
            title=run_id,
        )
        finish_run(factory, run_id, metrics, str(path))
    finally:
        engine.dispose()
    return metrics


def _runs_show_row(url: str, ids: list[str], label: str) -> list[str]:
    """The cells of one row of `tradegraph runs show ID...`."""
    from agent.backtest.tables import compare_runs_table
    from agent.runs.catalog import get_runs

    engine, factory = open_db(url)
    try:
        table = compare_runs_table(get_runs(factory, ids))
    finally:
        engine.dispose()
    row = list(table.columns[0]._cells).index(label)
    return [str(c._cells[row]) for c in table.columns[1:]]


@pytest.mark.slow
def test_buy_and_hold_is_one_figure_in_the_rule_report_the_agent_report_and_runs_show(
    data_folder: Path,
) -> None:
    start, end = WINDOWS["last"][1] - 72 * HOUR, WINDOWS["last"][1]
    settings = Settings(
        symbols=["BTC/USDT"],
        timeframe="1h",
        strategy="llm",
        data_dir=data_folder,
        database_url=f"sqlite:///{data_folder / 'hold.db'}",
    )
    request = BacktestRequest(
        strategy="sma_cross", symbols=["BTC/USDT"], timeframe="1h", start=_iso(start), end=_iso(end)
    )
    rule = run_request(request, settings, None)
    agent = _agent_run(settings, "agent-hold", "llm", start, end)
    full = rule.comparison["buy_and_hold"]["total_return"]
    assert agent["buy_and_hold"]["total_return"] == full
    assert (
        _runs_show_row(settings.db_url, [rule.run_id, "agent-hold"], "buy & hold return")
        == [f"{full:.2%}"] * 2
    )
    # fully invested: the price change less one entry's fee and slippage, not the 50% the risk cap holds
    frame = rule.hold.sim
    bought = frame.fill_price[0] * (1 + 0.001)
    move = float(rule.result.close[-1, 0]) * frame.fill_amount[0] / (bought * frame.fill_amount[0]) - 1
    assert abs(full - move) < 0.003 and frame.fill_bar.tolist() == [0]
    capped = rule.comparison["buy_and_hold_capped"]["total_return"]
    assert abs(capped - full / 2) < 0.002  # the labelled second column: held within max_position_exposure


@pytest.mark.slow
def test_the_daemon_and_the_backtest_report_the_same_total_return(data_folder: Path) -> None:
    from agent.evaluation.agent_report import run_metrics
    from agent.graph.factory import load_source, trading_rules

    start, end = WINDOWS["feb25"][0], WINDOWS["feb25"][0] + 120 * HOUR
    settings = _settings(data_folder, "sma_cross")
    request = BacktestRequest(
        strategy="sma_cross", symbols=SYMBOLS, timeframe="1h", start=_iso(start), end=_iso(end)
    )
    backtest = run_request(request, settings, None).comparison
    options = DaemonOptions(
        replay=True,
        speed=3600 * 1000,
        start=_iso(start),
        end=_iso(end),
        strategy="sma_cross",
        run_id="daemon-report",
        lease_ttl_s=60,
    )
    assert Daemon(settings, options).run().finished
    engine, factory = open_db(settings.db_url)
    try:
        daemon = run_metrics(
            factory, "daemon-report", load_source(settings), settings, trading_rules(settings)
        )
    finally:
        engine.dispose()
    assert daemon["strategy"]["total_return"] == backtest["strategy"]["total_return"]
    assert daemon["buy_and_hold"]["total_return"] == backtest["buy_and_hold"]["total_return"]


@pytest.mark.slow
def test_the_first_tick_of_a_rule_already_long_buys_as_the_engine_does(data_folder: Path) -> None:
    from agent.graph.factory import load_source, open_agent
    from strategies.registry import build_strategy

    settings = _settings(data_folder, "sma_cross")
    source = load_source(settings)
    frame = source.history("BTC/USDT", WINDOWS["last"][1])
    target = build_strategy("sma_cross").exposure(frame)
    long_twice = [i for i in range(1, len(target)) if target[i] == 1.0 and target[i - 1] == 1.0]
    t = int(frame.index[long_twice[-1]].value // 1_000_000)
    with open_agent(settings, run_id="first", kind="daemon", source=source, checkpoint=False) as runner:
        assert runner.tick(t).status == "done"
        pending = runner.rt.pending
    # sized by the plan: the risk cap
    assert "BTC/USDT" in pending and pending["BTC/USDT"].target_exposure == 0.5
