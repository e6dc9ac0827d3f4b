"""The shipped published-protocol preset (data/campaigns/published_daily.toml) against an independent
reference implementation of the protocol, on every cell (regime x asset x baseline).

The reference is written from the protocol's description (docs/evaluation.md, "The published daily
preset") in plain Python and pandas: it reads the bundled candles itself, computes its indicators with pandas
(rolling means, `ewm(adjust=False)`, sample standard deviations) and keeps the cash and the holdings in a
loop. It calls nothing of `agent.execution`, `agent.backtest` or `strategies`. The engine (through the
preset loader and the backtest service) must agree with it to 1e-9 of the initial equity at every bar, and
the paper broker, driven bar by bar with the engine's orders, must agree with the engine bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.backtest.preset import CellRun, load_preset, preset_cells, preset_settings, run_preset
from agent.broker import Bar, FillTerms, PendingTarget, initial_state, process_bar
from agent.config import PROJECT_ROOT, BrokerSettings, Settings
from agent.errors import ConfigError
from agent.market.exchange import MarketRules

PRESET = PROJECT_ROOT / "data" / "campaigns" / "published_daily.toml"
TOLERANCE = 1e-9
"""Largest difference allowed between the engine and the reference, as a fraction of the initial equity."""
DAY_MS = 86_400_000


# ---- the reference: the protocol from its description ---------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """The protocol's numbers for one cell, read from the TOML file as plain data."""

    cash: float
    initial_share: float
    fee: float
    fixed_fee: float


def protocol_of(raw: dict, symbol: str) -> Protocol:
    c = raw["conventions"]
    fixed = c["fixed_fee"]
    return Protocol(
        c["initial_cash"],
        c["initial_position"],
        c["fee"],
        fixed[symbol] if isinstance(fixed, dict) else fixed,
    )


def daily_bars(symbol: str) -> pd.DataFrame:
    """The bundled daily candles of `symbol`, read with pandas (open time as the index)."""
    frame = pd.read_feather(PROJECT_ROOT / "data" / "binance" / f"{symbol.replace('/', '_')}-1d.feather")
    column = next(c for c in ("date", "time", "timestamp", "open_time") if c in frame.columns)
    index = pd.to_datetime(frame[column], utc=True)
    return frame.set_index(index)[["open", "high", "low", "close"]].astype(float)


def reference_orders(strategy: str, params: dict, opens: pd.Series) -> pd.Series:
    """The order of each day, from the opens up to it (the published baselines' rules)."""
    buy, sell = params.get("buy", 1.0), params.get("sell", 1.0)
    if strategy == "buy_and_hold":
        return pd.Series(0.0, index=opens.index)  # its one buy is made below, at the first open
    if strategy == "sma":
        sma = opens.rolling(params["period"]).mean()
        up, down = opens > sma, opens < sma
    elif strategy == "slma":
        short, long = opens.rolling(params["short"]).mean(), opens.rolling(params["long"]).mean()
        up, down = short > long, short < long
    elif strategy == "macd":
        line = (
            opens.ewm(span=params["fast"], adjust=False).mean()
            - opens.ewm(span=params["slow"], adjust=False).mean()
        )
        signal = line.ewm(span=params["signal"], adjust=False).mean()
        up, down = (line < signal, line > signal) if params["contrarian"] else (line > signal, line < signal)
    elif strategy == "bollinger":
        mid, std = opens.rolling(params["period"]).mean(), opens.rolling(params["period"]).std(ddof=1)
        up, down = opens < mid - params["nbdev"] * std, opens > mid + params["nbdev"] * std
    else:
        raise AssertionError(f"no reference for {strategy}")
    return pd.Series(np.where(up, buy, np.where(down, -sell, 0.0)), index=opens.index)


def reference_run(
    bars: pd.DataFrame, orders: pd.Series, p: Protocol, buy_all_first: bool
) -> tuple[list[float], int]:
    """(equity after each day's close, number of fills) of the protocol over `bars`."""
    first_open = float(bars["open"].iloc[0])
    held = p.initial_share * p.cash / first_open  # the initial position: no fee
    cash = p.cash - held * first_open
    equity, fills = [], 0
    for day, (when, row) in enumerate(bars.iterrows()):
        price = float(row["open"])
        order = 1.0 if buy_all_first and day == 0 else float(orders[when])
        if order < 0 and held > 0:  # sell that fraction of the holdings
            units = -order * held
            cash += units * price * (1 - p.fee) - p.fixed_fee
            held = 0.0 if order <= -1 else held - units
            fills += 1
        elif order > 0 and cash > 0:  # buy with that fraction of the cash, never more than it affords
            units = min(order * cash / price, (cash - p.fixed_fee) / (price * (1 + p.fee)))
            if units > 1e-12:
                cash -= units * price * (1 + p.fee) + p.fixed_fee
                held += units
                fills += 1
        equity.append(cash + held * float(row["close"]))
    return equity, fills


def reference_cell(raw: dict, window: dict, symbol: str, strategy: dict) -> tuple[list[float], int]:
    """The reference's equity curve and fill count of one cell."""
    bars = daily_bars(symbol)
    orders = reference_orders(strategy["name"], strategy.get("params", {}), bars["open"])
    start, end = pd.Timestamp(window["start"], tz="UTC"), pd.Timestamp(window["end"], tz="UTC")
    traded = bars[(bars.index >= start) & (bars.index < end)]
    return reference_run(traded, orders, protocol_of(raw, symbol), strategy["name"] == "buy_and_hold")


# ---- the engine and the broker ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict:
    import tomllib

    return tomllib.loads(PRESET.read_text())


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(database_url="sqlite://")


@pytest.fixture(scope="module")
def runs(settings: Settings) -> list[CellRun]:
    return run_preset(load_preset(PRESET), settings)


def broker_equity(run: CellRun, settings: Settings) -> tuple[list[float], list[float], int]:
    """The paper broker over the cell's bars, given the engine's orders: (equity, cash, fills) per bar."""
    p, result = run.prepared, run.result
    symbol = p.symbols[0]
    frame = p.window.frames[symbol]
    frame = frame[frame.index >= p.window.trade_start]
    rule = p.rules[0]
    rules = {
        symbol: MarketRules(
            symbol, rule.amount_step, rule.min_amount, rule.min_notional, rule.taker_fee, rule.maker_fee
        )
    }
    broker = BrokerSettings(
        initial_cash=p.config.initial_cash,
        slippage_bps=p.config.slippage_bps,
        fixed_fee=p.config.fixed_fee,
        initial_position=dict(p.config.initial_position),
    )
    merged = preset_settings(load_preset(PRESET), settings)
    terms = FillTerms(merged.risk, broker, DAY_MS, timing=p.config.fill, style=p.strategy.style)  # type: ignore[arg-type]
    state, in_force = initial_state(p.config.initial_cash), {}
    equity, cash, fills = [], [], 0
    for t, (when, row) in enumerate(frame.iterrows()):
        ts = int(when.value // 1_000_000)
        goal = float(result.targets[t, 0])
        pending = {}
        if p.strategy.style == "target" or goal != 0.0:
            pending[symbol] = PendingTarget(symbol, goal, ts)
        candle = Bar(
            float(row["open"]),
            float(row["high"]),
            float(row["low"]),
            float(row["close"]),
            float(row["volume"]),
        )
        out = process_bar(state, {symbol: candle}, pending, ts, rules, terms, "preset", in_force)
        state, in_force = out.state, dict(out.in_force)
        equity.append(out.equity)
        cash.append(out.state.cash)
        fills += len(out.fills)
    return equity, cash, fills


def test_the_preset_has_three_regimes_five_baselines_and_the_published_costs(raw: dict) -> None:
    preset = load_preset(PRESET)
    assert [w.regime for w in preset.windows] == ["bear", "sideways", "bull"]
    assert [s.name for s in preset.strategies] == ["buy_and_hold", "sma", "slma", "macd", "bollinger"]
    c = preset.conventions
    assert (c.initial_cash, c.initial_position, c.fill, c.fee, c.slippage_bps) == (
        1e6,
        0.5,
        "same_open",
        0.004,
        0.0,
    )
    assert len(preset_cells(preset)) == 45


def test_every_cell_matches_the_reference_and_the_broker(
    runs: list[CellRun], raw: dict, settings: Settings
) -> None:
    strategies = {s["name"]: s for s in raw["strategies"]}
    windows = {w["name"]: w for w in raw["windows"]}
    worst, lines = 0.0, []
    for run in runs:
        cell = run.cell
        sim = run.result.sim
        expected, ref_fills = reference_cell(
            raw, windows[cell.window.name], cell.symbols[0], strategies[cell.strategy.name]
        )
        assert len(expected) == len(sim.equity), cell.key
        gap = float(np.max(np.abs(np.asarray(expected) - sim.equity))) / run.prepared.config.initial_cash
        worst = max(worst, gap)
        equity, cash, fills = broker_equity(run, settings)
        assert equity == sim.equity.tolist(), f"{cell.key}: the broker's equity differs from the engine's"
        assert cash == sim.cash.tolist(), cell.key
        assert fills == len(sim.fill_bar) == ref_fills + 1, cell.key  # + the initial position's fill
        lines.append(
            f"{cell.key:32s} bars {len(expected):3d} fills {fills:3d} max |engine - reference| {gap:.2e}"
        )
        assert gap <= TOLERANCE, f"{cell.key}: {gap:.3g} of the initial equity"
    print("\n".join([*lines, f"worst {worst:.2e} of the initial equity over {len(runs)} cells"]))
    assert len(runs) == 45


def test_the_reference_is_not_the_engine_in_disguise(raw: dict) -> None:
    """The comparison can fail: a reference with another fee or without the initial position disagrees."""
    window, strategy = raw["windows"][0], next(s for s in raw["strategies"] if s["name"] == "sma")
    bars = daily_bars("ETH/USDT")
    traded = bars[
        (bars.index >= pd.Timestamp(window["start"], tz="UTC"))
        & (bars.index < pd.Timestamp(window["end"], tz="UTC"))
    ]
    orders = reference_orders("sma", strategy["params"], bars["open"])
    right = protocol_of(raw, "ETH/USDT")
    base, _ = reference_run(traded, orders, right, False)
    for wrong in (
        Protocol(right.cash, right.initial_share, right.fee, 0.0),
        Protocol(right.cash, 0.0, right.fee, right.fixed_fee),
        Protocol(right.cash, right.initial_share, 0.001, right.fixed_fee),
    ):
        other, _ = reference_run(traded, orders, wrong, False)
        assert max(abs(a - b) for a, b in zip(base, other, strict=True)) / right.cash > 1e3 * TOLERANCE


def test_a_bad_campaign_file_is_one_line(tmp_path: Path) -> None:
    text = PRESET.read_text()
    cases = {
        "missing.toml": None,
        "typo.toml": text.replace("initial_cash =", "initial_cahs ="),
        "twice.toml": text.replace('name = "sma"', 'name = "slma"'),
        "syntax.toml": text + "\n[[windows]\n",
    }
    for name, body in cases.items():
        path = tmp_path / name
        if body is not None:
            path.write_text(body)
        with pytest.raises(ConfigError) as err:
            load_preset(path)
        assert str(err.value).startswith("campaign file") and "\n" not in str(err.value), name


def test_daily_windows_ending_after_the_last_bar_say_nothing_about_missing_data(runs: list[CellRun]) -> None:
    assert all(not run.prepared.notes for run in runs), runs[0].prepared.notes
    assert all(math.isfinite(run.comparison["strategy"]["total_return"]) for run in runs)


def test_the_command_line_fills_a_strategy_deciding_on_the_open_at_that_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app
    from agent.db.session import open_db
    from agent.runs.catalog import list_runs

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", url)
    args = ["backtest", "-s", "strategies.published:OpenSma", "--symbol", "ETH/USDT", "-t", "1d"]
    result = CliRunner().invoke(app, [*args, "--start", "2023-10-01", "--end", "2023-12-01", "--no-report"])
    assert result.exit_code == 0, result.output
    engine, factory = open_db(url)
    try:
        (run,) = list_runs(factory, limit=10)
    finally:
        engine.dispose()
    assert run.config["engine"]["fill"] == "same_open" and run.config["engine"]["style"] == "order_fraction"


def test_record_preset_records_one_run_per_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.backtest.preset import record_preset

    text = PRESET.read_text()
    small = (
        text.split("[[windows]]")[0] + "[[windows]]" + text.split("[[windows]]")[3].split("[[strategies]]")[0]
    )
    small += "[[strategies]]" + text.split("[[strategies]]")[1]  # bull window, buy & hold only
    path = tmp_path / "small.toml"
    path.write_text(small)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'runs.db'}")
    outcomes = record_preset(load_preset(path), settings, None)
    assert [cell.key for cell, _ in outcomes] == [
        f"bull/{s}/buy_and_hold" for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    ]
    assert len({o.run_id for _, o in outcomes}) == 3
