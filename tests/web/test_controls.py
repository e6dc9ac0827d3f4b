"""The operator's controls in the ledger (`agent.db.controls`) and the daemon honouring them: a kill switch
or a pause set in the database stops new entries at the next tick, recorded as the decisions' clamp."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from agent.daemon import Daemon, DaemonOptions
from agent.db.controls import control_history, read_controls, set_control
from agent.db.models import Decision, Order
from agent.db.session import open_db
from agent.ledger import start_run
from agent.risk.breakers import kill_switch_active
from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, iso, settings


def test_controls_are_recorded_with_who_and_the_newest_row_wins(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        assert not read_controls(factory).entries_stopped
        set_control(factory, "kill_switch", True, "alice", "127.0.0.1")
        set_control(factory, "pause", True, "bob")
        set_control(factory, "pause", False, "carol")
        state = read_controls(factory)
        assert state.killed and not state.paused and state.entries_stopped
        assert state.kill_switch is not None and state.kill_switch.who == "alice"
        assert [(c.name, c.active, c.who) for c in control_history(factory)] == [
            ("pause", False, "carol"),
            ("pause", True, "bob"),
            ("kill_switch", True, "alice"),
        ]
        assert kill_switch_active(None, factory)
        start_run(factory, "bt", kind="agent_backtest", strategy="llm", symbols=["BTC/USDT"], timeframe="1h")
        start_run(factory, "live", kind="daemon", strategy="llm", symbols=["BTC/USDT"], timeframe="1h")
        assert kill_switch_active(None, factory, "live") and not kill_switch_active(None, factory, "bt")
        set_control(factory, "kill_switch", False, "alice")
        assert not kill_switch_active(None, factory)
        assert not kill_switch_active(None)
    finally:
        engine.dispose()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("control", ["kill_switch", "pause"])
def test_a_daemon_honours_a_control_set_in_the_database(tmp_path: Path, control: str) -> None:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    engine, factory = open_db(url)
    try:
        set_control(factory, control, True, "ops")  # type: ignore[arg-type]
        options = DaemonOptions(
            replay=True, speed=3600 * 50, start=iso(DATA_END - 40 * HOUR), params=SMA, run_id="ctl"
        )
        assert Daemon(settings(folder, url), options).run().finished
        with factory() as session:
            clamps = [c for row in session.scalars(select(Decision.clamps)) for c in row]
            buys = session.scalars(select(Order).where(Order.side == "buy")).all()
        assert buys == []
        assert any(c.get("kind") == "kill_switch" for c in clamps)
    finally:
        engine.dispose()
