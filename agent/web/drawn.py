"""A run's charts as embeddable HTML, drawn once per ledger version, and kept warm for the daemon's run.

Contracts:
- `run_charts(cache, reader, data_dir, run)` gives (equity against buy & hold, the fills on each symbol's
  price) without the CSP nonce (`figures.embed` adds it per response). Both are drawn only when the run's
  ledger version (`agent.runs.queries.ledger_version`: bars, newest bar, newest order) has no entry in
  `cache`; the equity curve is read once for both.
- `Warmer` is a daemon thread that, every `every_s` seconds, draws the charts of the run the daemon's lease
  names (when its ledger changed), so the first page after a new bar does not pay for the drawing.
  `stop()` ends it; a failure is logged and retried at the next round.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from agent.backtest import charts
from agent.daemon.lease import read_lease
from agent.runs import queries as q
from agent.web import figures
from agent.web.figures import ChartCache

log = logging.getLogger("tradegraph.web")
MAX_SYMBOL_CHARTS = 4
WARM_EVERY_S = 1.0


def run_charts(
    cache: ChartCache, reader: sessionmaker[Session], data_dir: Path, run: q.RunRow
) -> tuple[str, str]:
    """(equity chart, trades charts) of `run` (module contract)."""
    version = q.ledger_version(reader, run.id)
    curve: list[tuple[q.EquityPoint, ...]] = []

    def read_curve() -> tuple[q.EquityPoint, ...]:
        if not curve:
            curve.append(q.equity_curve(reader, run.id))
        return curve[0]

    equity = cache.get(("equity", run.id, version), lambda: equity_div(data_dir, run, read_curve()))
    trades = cache.get(("trades", run.id, version), lambda: trades_divs(reader, data_dir, run, read_curve()))
    return equity, trades


def equity_div(data_dir: Path, run: q.RunRow, curve: tuple[q.EquityPoint, ...]) -> str:
    """The equity against buy & hold, drawdown and exposure chart (`#equity-chart`), or ''."""
    found = figures.equity_lines(curve, run.strategy, run.symbols, run.timeframe, data_dir)
    if found is None:
        return ""
    ov, factor = found
    note = f" (min and max of every {factor} bars drawn)" if factor > 1 else ""
    title = f"{run.id}: equity against buy & hold{note}"
    return charts.div(charts.overview_figure(ov, title), "equity-chart")


def trades_divs(
    reader: sessionmaker[Session], data_dir: Path, run: q.RunRow, curve: tuple[q.EquityPoint, ...]
) -> str:
    """Each symbol's closes with the run's fills (`#trades-<i>`, up to `MAX_SYMBOL_CHARTS`), or ''."""
    if not curve:
        return ""
    orders = q.run_orders(reader, run.id)
    span = (curve[0].bar_ts, curve[-1].bar_ts)
    parts = []
    for i, symbol in enumerate(run.symbols[:MAX_SYMBOL_CHARTS]):
        marks = figures.price_marks(symbol, run.timeframe, data_dir, orders, span)
        if marks is not None:
            parts.append(charts.div(charts.trades_figure(marks, f"{symbol}: fills"), f"trades-{i}"))
    return "".join(parts)


class Warmer:
    """Keeps the daemon run's charts drawn (module contract)."""

    def __init__(
        self, cache: ChartCache, reader: sessionmaker[Session], data_dir: Path, every_s: float = WARM_EVERY_S
    ) -> None:
        self.cache = cache
        self.reader = reader
        self.data_dir = data_dir
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dashboard-charts", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it up to `timeout` seconds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def warm_once(self) -> bool:
        """Draw the lease's run's charts if they are not drawn; False when there is no such run."""
        lease = read_lease(self.reader)
        run = q.get_run(self.reader, lease.run_id) if lease is not None and lease.run_id else None
        if run is None:
            return False
        run_charts(self.cache, self.reader, self.data_dir, run)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.warm_once()
            except Exception as e:  # noqa: BLE001 - a page will draw them instead; retried next round
                log.warning("cannot draw the daemon run's charts: %s", e)
