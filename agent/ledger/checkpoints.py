"""Checkpoint retention: a tick's LangGraph checkpoint thread is deleted once the ledger holds the tick.

Contracts:
- Checkpoints exist so that a tick killed midway resumes from its last completed node. Once the graph ran
  to its end (the ledger transaction of the tick, or of its skip, committed), the tick's thread has no use:
  `prune_tick(saver, thread_id)` deletes it, all its checkpoints and pending writes. The checkpoint tables
  then hold only ticks in flight, plus at most one thread per crash between the commit and the prune.
- Call it only after the ledger commit: pruning earlier would lose the resume point of a tick that fails
  before its record.
- Pruning never fails the tick (the ledger is the truth; a leftover thread only costs space): an error is
  logged as a warning. Without a checkpointer (`None`) there is nothing to prune.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("tradegraph.ledger")


class ThreadStore(Protocol):
    """What pruning needs from a LangGraph checkpointer."""

    def delete_thread(self, thread_id: str) -> None: ...


def prune_tick(saver: ThreadStore | None, thread_id: str) -> None:
    """Delete the checkpoint thread `thread_id` of a recorded tick (see the module contract)."""
    if saver is None:
        return
    try:
        saver.delete_thread(thread_id)
    except Exception as e:  # noqa: BLE001 - the tick is recorded; a leftover thread is only space
        log.warning(
            "could not prune the checkpoints of %s: %s",
            thread_id,
            e,
            extra={"event": "checkpoint_prune_failed", "thread_id": thread_id},
        )
