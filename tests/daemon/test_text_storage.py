"""The daemon's free-text columns are storable whatever they quote: `daemon_ticks.reason` and
`daemon_leases.note` go through `agent.textsafe.for_storage` (a NUL failed PostgreSQL's insert, a lone
surrogate SQLite's)."""

from __future__ import annotations

from agent.daemon import journal
from agent.daemon.lease import Holder, Lease, read_lease
from agent.db.session import open_db
from agent.runs.lifecycle import RunKind, RunSpec, create_run

HOSTILE = "exchange said \x00 then \ud800"
STORED = "exchange said \ufffd then \ufffd"


def test_a_tick_reason_quoting_nul_and_surrogates_is_journaled(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        create_run(factory, RunSpec("r1", RunKind.DAEMON, "sma_cross", ["BTC/USDT"], "1h"))
        journal.record(factory, journal.JournalEntry("r1", 1, "skipped", reason=f"{HOSTILE}\nsecond line"))
        (entry,) = journal.recent(factory, "r1")
    finally:
        engine.dispose()
    assert entry.reason == f"{STORED} second line"


def test_a_lease_note_quoting_nul_and_surrogates_is_stored(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        lease = Lease(factory, Holder("h1:101:x", "h1", 101), 30)
        lease.acquire("r1", "live")
        lease.heartbeat(note=HOSTILE)
        assert read_lease(factory).note == STORED  # type: ignore[union-attr]
        assert lease.release(f"stopped: {HOSTILE}")
        info = read_lease(factory)
    finally:
        engine.dispose()
    assert info is not None and info.holder is None and info.note == f"stopped: {STORED}"
