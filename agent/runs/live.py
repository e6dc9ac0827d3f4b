"""The figures of a run in progress, kept current on its `runs` row (the daemon's run).

Contracts:
- `measure` (given by the owner) returns the run's `RunMetrics` from its ledger, or None while it has no
  bar yet. `refresh()` stores them on the run row (`lifecycle.update_metrics`, status untouched), so
  `tradegraph runs show` of a running daemon shows its figures. It never raises: a failure is logged and
  the previous figures stay; the run goes on.
- Refreshes are rate-limited: at most one every `every_s` seconds of `clock` (default `REFRESH_S` of
  monotonic time, counted from creation). A live daemon ticks one bar per candle, so each of its wake-ups
  refreshes; a fast replay is measured every few seconds instead of after every wake-up, so measuring
  (which reads the whole ledger) neither slows it down nor grows with the square of its length.
- `close(finished)` measures once more and writes the last figures: `finish_run` (status `done`) when the
  run is over, else `update_metrics` (a stopped daemon's run stays `running`, to be resumed). A refresh in
  flight on another thread is waited for; none is stored after `close`. A failed last measurement is logged
  and a finished run is still marked done without new figures (a failure to mark it done propagates); a
  failure to store a stopped run's figures is logged (its last refreshed figures stay).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from agent.runs.lifecycle import finish_run, update_metrics
from agent.runs.metrics import RunMetrics

log = logging.getLogger("tradegraph.runs")
REFRESH_S = 10.0
"""Least time between two refreshes of a run's stored figures."""


class LiveMetrics:
    """Keeps one run's stored figures current (see the module contract)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        run_id: str,
        measure: Callable[[], RunMetrics | None],
        *,
        every_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.run_id = run_id
        self.measure = measure
        self.every_s = every_s
        self.clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._closed = False

    def refresh(self) -> bool:
        """Measure and store the figures if the last refresh is `every_s` old; True when stored."""
        with self._lock:
            now = self.clock()
            if self._closed or now - self._last < self.every_s:
                return False
            self._last = now
            try:
                figures = self.measure()
                if figures is None:
                    return False
                update_metrics(self.factory, self.run_id, figures.to_json())
            except Exception as e:  # noqa: BLE001 - the run outlives its figures; the next refresh retries
                self._failed("update the metrics of", e)
                return False
            return True

    def close(self, finished: bool) -> RunMetrics | None:
        """Write the last figures (module contract); returns them (None when there were none)."""
        with self._lock:
            self._closed = True
            try:
                figures = self.measure()
            except Exception as e:  # noqa: BLE001 - the run's end must still be recorded
                self._failed("measure", e)
                figures = None
            stored = figures.to_json() if figures is not None else None
            if finished:
                finish_run(self.factory, self.run_id, stored)
            elif stored is not None:
                try:
                    update_metrics(self.factory, self.run_id, stored)
                except Exception as e:  # noqa: BLE001 - stopping: the last refreshed figures stay
                    self._failed("store the last metrics of", e)
            return figures

    def _failed(self, what: str, error: Exception) -> None:
        log.warning(
            "cannot %s run %s: %s",
            what,
            self.run_id,
            error,
            extra={"event": "metrics_error", "run_id": self.run_id},
        )
