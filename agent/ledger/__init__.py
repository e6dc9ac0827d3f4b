"""Ledger: one transaction per tick into the database, and the exact broker state read back to resume."""

from agent.ledger.reader import LedgerReader, ResumePoint, StateReader, last_processed_bar, load_state
from agent.ledger.writer import (
    DecisionEntry,
    LedgerWriter,
    TickRecord,
    TickWriter,
    WriteSummary,
    start_run,
    write_tick,
)

__all__ = [
    "DecisionEntry",
    "LedgerReader",
    "LedgerWriter",
    "ResumePoint",
    "StateReader",
    "TickRecord",
    "TickWriter",
    "WriteSummary",
    "last_processed_bar",
    "load_state",
    "start_run",
    "write_tick",
]
