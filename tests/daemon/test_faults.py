"""Resilience: with 30% of exchange calls failing, the daemon keeps running, journals every skipped wake-up
with its reason, loses no tick, and ends with the same ledger as a run without faults."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.daemon import Daemon, DaemonOptions
from agent.daemon.lease import read_lease
from agent.db.session import open_db
from agent.market.replay import ReplayExchange
from tests.daemon.helpers import (
    DATA_END,
    HOUR,
    SMA,
    FlakyExchange,
    data_dir,
    iso,
    journal_rows,
    ledger,
    settings,
)

BARS = 48


def _run(folder: Path, url: str, exchange: object) -> tuple[str, object]:
    cfg = settings(folder, url, exchange={"max_retries": 1, "backoff_base_s": 0.0, "backoff_max_s": 0.0})
    options = DaemonOptions(
        replay=True,
        speed=3600 * 40,
        start=iso(DATA_END - BARS * HOUR),
        params=SMA,
        run_id="faults",
        lease_ttl_s=10,
    )
    result = Daemon(cfg, options, exchange=exchange).run()
    return url, result


@pytest.mark.timeout(180)
def test_thirty_percent_network_faults_skip_wake_ups_with_reasons_and_lose_no_tick(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    flaky = FlakyExchange(ReplayExchange(folder), rate=0.3, seed=7)
    url, result = _run(folder, f"sqlite:///{tmp_path / 'flaky.db'}", flaky)
    assert result.finished and result.reason == "replay finished"  # type: ignore[attr-defined]
    assert flaky.failures >= 10, flaky.failures

    rows = journal_rows(url, "faults")
    skipped = [reason for _, status, reason in rows if status == "skipped"]
    assert skipped, "a 30% fault rate must make some wake-up outlive its retries"
    assert all(r and r.startswith("market data: ") for r in skipped)
    assert all("NetworkError: injected network fault" in r for r in skipped)
    assert not [r for r in rows if r[1] == "error"]
    ticked = Counter(bar for bar, status, _ in rows if status in ("done", "resumed"))
    expected = [DATA_END - (BARS - i) * HOUR for i in range(BARS)]
    assert sorted(ticked) == expected and set(ticked.values()) == {1}

    book = ledger(url, "faults")
    assert [b[0] for b in book["balances"]] == expected
    engine, factory = open_db(url)
    try:
        lease = read_lease(factory)
        assert lease is not None and lease.holder is None and lease.note == "replay finished"
    finally:
        engine.dispose()

    calm_url, calm = _run(folder, f"sqlite:///{tmp_path / 'calm.db'}", ReplayExchange(folder))
    assert ledger(calm_url, "faults") == book
    assert not [r for r in journal_rows(calm_url, "faults") if r[1] != "done"]
