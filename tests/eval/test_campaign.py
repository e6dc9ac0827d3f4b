"""`tradegraph eval`: campaign files, cells and their settings, a whole campaign against the vLLM emulator
(every cell a recorded run, the table read from the runs' stored metric sets), a rerun that makes no call,
an interrupted campaign that continues to the same result, and bad campaigns that record nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agent.backtest.preset import WindowSpec
from agent.config import DEFAULT_DATA_DIR, Settings, load_settings
from agent.db.models import Run
from agent.db.session import open_db
from agent.errors import ConfigError, DataError
from agent.eval import report, table
from agent.eval.campaign import cutoff_side, llm_settings, load_campaign
from agent.eval.runner import CellResult, run_campaign
from agent.evaluation.frames import equity_frame
from agent.graph.runner import AgentRunner
from agent.runs.metrics import RunMetrics
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import emulator_settings

CAMPAIGN = """
[campaign]
name = "tiny"
timeframe = "1d"
symbols = ["BTC/USDT"]
training_cutoff = "2024-06-30"

[conventions]
fee = 0.001
fixed_fee = 1.5

[statistics]
samples = 200

[[windows]]
name = "before"
regime = "bear"
start = "2022-06-01"
end = "2022-06-13"

[[windows]]
name = "after"
regime = "bull"
start = "2024-11-01"
end = "2024-11-13"

[[strategies]]
name = "sma"
spec = "sma_cross"
params = { fast = 3, slow = 8 }

[[strategies]]
name = "hold"
spec = "buy_and_hold"

[[llm]]
name = "model"
prompt_mode = "stateless"
"""


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "binance").symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    return folder


def _file(tmp_path: Path, text: str = CAMPAIGN, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(path: Path, settings: Settings, reports: Path, **kw: Any) -> list[CellResult]:
    return run_campaign(load_campaign(path, settings), settings, reports, show_progress=False, **kw)


def _runs(url: str) -> list[Run]:
    engine, factory = open_db(url)
    try:
        with factory() as s:
            return list(s.scalars(select(Run).order_by(Run.id)))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ the file


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('[[llm]]\nname = "model"\nprompt_mode = "stateless"\n', "listed more than once"),
        ('[[llm]]\nname = "h"\nstrategy = "hybrid"\n', "a rule is given exactly when"),
        ('[[llm]]\nname = "x"\ntemperature = 0.2\n', "temperature"),
        ('[[llm]]\nname = "x"\ncontext_tokens = 100\n', "context_tokens"),
    ],
)
def test_a_bad_llm_variant_is_one_line_naming_the_file(tmp_path: Path, change: str, message: str) -> None:
    path = _file(tmp_path, CAMPAIGN + change)
    with pytest.raises(ConfigError) as e:
        load_campaign(path, load_settings())
    text = str(e.value)
    assert "\n" not in text and str(path) in text and message in text


def test_windows_are_placed_against_the_training_cutoff() -> None:
    def side(start: str, end: str) -> str:
        return cutoff_side(WindowSpec(name="w", start=start, end=end), "2024-06-30")

    assert side("2024-06-01", "2024-07-01") == "before", "the cutoff day is the last day seen (end exclusive)"
    assert side("2024-06-01", "2024-07-02") == "spans"
    assert side("2024-07-01", "2024-08-01") == "after"
    assert cutoff_side(WindowSpec(name="w", start="2024-01-01", end="2024-02-01"), None) == "unknown"


def test_an_llm_cell_runs_with_the_variant_and_the_campaigns_conventions(tmp_path: Path) -> None:
    text = CAMPAIGN.replace(
        "fixed_fee = 1.5", 'initial_position = 0.5\n[conventions.fixed_fee]\n"BTC/USDT" = 4.0'
    )
    text += '[[llm]]\nname = "hy"\nstrategy = "hybrid"\nrule = "rsi_reversion"\n'
    text += 'thinking = "on"\nconcurrency = 2\n'
    text += "[risk]\nmax_position_exposure = 0.9\n"
    base = load_settings()
    campaign = load_campaign(_file(tmp_path, text), base)
    cell = next(c for c in campaign.cells if c.strategy == "hy")
    cs = llm_settings(campaign, cell, base)
    assert (cs.strategy, cs.fallback_strategy, cs.llm.thinking) == ("hybrid", "rsi_reversion", "on")
    assert cs.llm.concurrency == 2
    assert cs.symbols == ["BTC/USDT"] and cs.timeframe == "1d"
    assert cs.broker.taker_fee == 0.001 and cs.broker.fixed_fee == 4.0
    assert cs.broker.initial_position == {"BTC/USDT": 0.5} and cs.risk.max_position_exposure == 0.9
    assert cs.llm.profile == base.llm.profile, "a field the variant leaves out is the configuration's"


def test_the_campaign_id_follows_the_file_and_the_settings(tmp_path: Path) -> None:
    base = load_settings()
    one = load_campaign(_file(tmp_path), base)
    assert load_campaign(_file(tmp_path), base).id == one.id
    assert load_campaign(_file(tmp_path, CAMPAIGN + "\n# edited\n", "b.toml"), base).id != one.id
    assert load_campaign(_file(tmp_path), load_settings(llm={"model": "other"})).id != one.id
    ids = [one.run_id(c) for c in one.cells]
    assert len(set(ids)) == len(ids) == 6 and all(len(i) <= 32 for i in ids)
    assert [c.key for c in one.cells][:3] == [
        "before/BTC/USDT/sma",
        "before/BTC/USDT/hold",
        "before/BTC/USDT/model",
    ]


# ----------------------------------------------------------------------------------- a whole campaign


def test_a_campaign_records_every_cell_and_a_rerun_makes_no_call(tmp_path: Path, data_folder: Path) -> None:
    path = _file(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with VLLMEmulator(latency_s=0.0, max_model_len=65536) as emu:
        settings = emulator_settings(url, emu.base_url, data_dir=data_folder)
        campaign = load_campaign(path, settings)
        first = _run(path, settings, tmp_path / "reports")
        calls = len(emu.calls)
        again = _run(path, settings, tmp_path / "reports")
        assert len(emu.calls) == calls, "every cell is read back: no model call"
    assert calls == 24 and [r.resumed for r in first] == [False] * 6 and all(r.resumed for r in again)

    runs = {r.id: r for r in _runs(url)}
    assert sorted(runs) == sorted(campaign.run_id(c) for c in campaign.cells)
    assert {r.status for r in runs.values()} == {"done"}
    kinds = {r.run_id: runs[r.run_id].kind for r in first}
    assert sorted(set(kinds.values())) == ["agent_backtest", "backtest"]
    for r in first:  # the table's figures are the runs' stored metric sets, as `runs compare` shows them
        stored = RunMetrics.from_json(runs[r.run_id].metrics)
        assert stored is not None and stored.strategy.numbers() == pytest.approx(
            r.metrics.strategy.numbers(), nan_ok=True
        )
        if r.cell.kind == "rule":
            assert runs[r.run_id].config["campaign"] == campaign.id
    llm = [r for r in first if r.cell.kind == "llm"]
    assert all(r.calibration is not None and r.calibration.decisions > 0 for r in llm)

    groups, again_groups = table.build(campaign, first), table.build(campaign, again)
    assert [g.window for g in groups] == ["before", "after"]
    assert [row.name for row in groups[0].rows] == ["sma", "hold", "model", "buy & hold", "cash"]
    folder = tmp_path / "out"
    a = json.loads(
        report.write(folder / "a", campaign, first, groups, []).with_name("campaign.json").read_text()
    )
    b = json.loads(
        report.write(folder / "b", campaign, again, again_groups, []).with_name("campaign.json").read_text()
    )
    assert a["groups"] == b["groups"], "a rerun prints the same table, tests included"
    row = groups[1].rows[2]
    assert row.kind == "llm" and not math.isnan(row.brier) and 0 <= row.p_vs_hold <= 1

    cutoffs = table.cutoff_rows(campaign, first)
    assert [(c.variant, c.windows_before, c.windows_after) for c in cutoffs] == [("model", 1, 1)]
    hold = {
        g.window: next(x for x in g.rows if x.kind == "buy_and_hold").metrics.total_return for g in groups
    }
    model = {g.window: next(x for x in g.rows if x.name == "model").metrics.total_return for g in groups}
    assert cutoffs[0].excess_before == pytest.approx(model["before"] - hold["before"])
    assert cutoffs[0].excess_after == pytest.approx(model["after"] - hold["after"])


def test_an_interrupted_campaign_continues_to_the_same_result(
    tmp_path: Path, data_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path)
    with VLLMEmulator(latency_s=0.0, max_model_len=65536) as emu:
        ref_url = f"sqlite:///{tmp_path / 'ref.db'}"
        ref_settings = emulator_settings(ref_url, emu.base_url, data_dir=data_folder)
        reference = _run(path, ref_settings, tmp_path / "ref")

        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        settings = emulator_settings(url, emu.base_url, data_dir=data_folder)
        tick = AgentRunner.tick
        ticks = {"n": 0}

        def killed(self: AgentRunner, t: int) -> Any:
            ticks["n"] += 1
            if ticks["n"] == 5:  # the first LLM cell, in the middle of its window
                raise KeyboardInterrupt
            return tick(self, t)

        monkeypatch.setattr(AgentRunner, "tick", killed)
        with pytest.raises(KeyboardInterrupt):
            _run(path, settings, tmp_path / "reports")
        statuses = {r.id[-3:]: r.status for r in _runs(url)}
        assert statuses == {"000": "done", "001": "done", "003": "done", "004": "done", "002": "failed"}
        monkeypatch.setattr(AgentRunner, "tick", tick)
        resumed = _run(path, settings, tmp_path / "reports")
    assert [r.resumed for r in resumed] == [True, True, False, True, True, False], "rule cells run first"
    engine, factory = open_db(url)
    ref_engine, ref_factory = open_db(ref_url)
    try:
        for mine, theirs in zip(resumed, reference, strict=True):
            assert mine.equity.tolist() == theirs.equity.tolist(), mine.cell.key
            if mine.cell.kind == "llm":
                got, want = equity_frame(factory, mine.run_id), equity_frame(ref_factory, theirs.run_id)
                assert got["equity"].tolist() == want["equity"].tolist()
    finally:
        engine.dispose()
        ref_engine.dispose()


def test_a_window_without_data_fails_before_anything_is_recorded(tmp_path: Path, data_folder: Path) -> None:
    text = CAMPAIGN + '[[windows]]\nname = "future"\nstart = "2031-01-01"\nend = "2031-02-01"\n'
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = load_settings(database_url=url, data_dir=data_folder)
    with pytest.raises((DataError, ConfigError)):
        _run(_file(tmp_path, text), settings, tmp_path / "reports")
    engine, factory = open_db(url)
    try:
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Run)) == 0
    finally:
        engine.dispose()


def test_an_llm_cell_reads_its_candles_once(
    tmp_path: Path, data_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.eval.runner as runner
    import agent.graph.backtest as backtest

    loads: list[str] = []

    def counted(module: Any) -> Any:
        real = module.load_source

        def load_source(settings: Settings, *args: Any, **kwargs: Any) -> Any:
            loads.append(module.__name__)
            return real(settings, *args, **kwargs)

        return load_source

    monkeypatch.setattr(runner, "load_source", counted(runner))
    monkeypatch.setattr(backtest, "load_source", counted(backtest))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with VLLMEmulator(latency_s=0.0, max_model_len=65536) as emu:
        settings = emulator_settings(url, emu.base_url, data_dir=data_folder)
        results = _run(_file(tmp_path), settings, tmp_path / "reports")
    llm_cells = sum(r.cell.kind == "llm" for r in results)
    assert llm_cells == 2
    # once per LLM cell to check the campaign before anything runs, once more to run the cell: the run,
    # its buy-and-hold baseline and its decisions' outcomes share that one
    assert loads == ["agent.eval.runner"] * (2 * llm_cells)
