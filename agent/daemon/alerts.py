"""What the daemon notifies about, found in the ledger after each wake-up and in its health at each beat.

    wake-up ticked bars → ledger rows of those bars → FillEvent / BreakerTrip / KillSwitchChange /
                          DailySummary → Notifier (agent.notify; queued, never blocking the tick)
    watch beat          → read_health → HealthChange (degraded, stalled, recovered)

Contracts:
- The ledger is the truth: after a wake-up, the bars with a balance snapshot newer than the last bar seen
  are read in bar order; each `fills` row of them is one `FillEvent`; a breaker (`agent.notify.BREAKERS`)
  recorded at a bar and not at the bar before is one `BreakerTrip` (a breaker blocking for ten bars is one
  trip); the kill switch recorded at a bar and not before is `on`, the other way round `off`.
- Bars processed before the daemon started are not reported again: the first bar seen is the ledger's last
  processed bar at start, whose breakers and kill switch are the state the next bar is compared with.
- The daily summary is sent once per UTC day, after the first bar whose close reaches `summary_hour_utc`
  on the daemon's clock (the bar times: simulated in a replay); it gives the equity then, its change since
  the previous summary (or the daemon's first bar), and the fills and trips since.
- Health: `degraded` and `stalled` are sent when the state becomes one of them, `recovered` when it is
  `alive` again after one; `stopped` is not a transition the daemon reports about itself.
- `after_wake()` and `beat()` never raise: a failure to read is logged and retried at the next call (the
  bars not yet reported stay after the last bar seen).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon.health import Health, HealthState
from agent.db.models import BalanceSnapshot, Fill, RiskEvent
from agent.notify import (
    BREAKERS,
    BreakerTrip,
    DailySummary,
    FillEvent,
    HealthChange,
    HealthTurn,
    KillSwitchChange,
    Notifier,
)
from agent.notify.events import Side

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger("tradegraph.daemon")
KILL_SWITCH = "kill_switch"
WATCHED = (*BREAKERS, KILL_SWITCH)
DAY_MS = 86_400_000


class DaemonAlerts:
    """Turns the ledger's new bars and the daemon's health into notifications (see the module contract)."""

    def __init__(
        self,
        notifier: Notifier,
        factory: sessionmaker[Session],
        run_id: str,
        *,
        tf_ms: int,
        first_bar_ms: int,
        summary_hour_utc: int,
        health: Callable[[], Health] | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.notifier = notifier
        self.factory = factory
        self.run_id = run_id
        self.tf_ms = tf_ms
        self.summary_hour_utc = summary_hour_utc
        self._health = health
        self._now_ms = now_ms or (lambda: int(datetime.now(UTC).timestamp() * 1000))
        self._lock = threading.Lock()
        self._state: HealthState | None = None
        self._last_bar, self._active, self._equity = self._start_state()
        start = self._last_bar + tf_ms if self._last_bar is not None else first_bar_ms
        self._next_summary = next_summary_ms(start, summary_hour_utc)
        self._fills = 0
        self._trips = 0

    def after_wake(self) -> None:
        """Notify what the bars ticked since the last call did (never raises)."""
        try:
            with self._lock:
                self._scan()
        except Exception as e:  # noqa: BLE001 - notifications never break the daemon
            log.warning("cannot read the new bars for notifications: %s", e, extra={"event": "notify_error"})

    def beat(self) -> None:
        """Notify a change of the daemon's health (never raises)."""
        if self._health is None:
            return
        try:
            health = self._health()
        except Exception as e:  # noqa: BLE001 - retried at the next beat
            log.warning("cannot read health for notifications: %s", e, extra={"event": "notify_error"})
            return
        with self._lock:
            turn = _turn(self._state, health.state)
            if health.state != "stopped":
                self._state = health.state
        if turn is not None:
            self.notifier.notify(HealthChange(self.run_id, turn, health.reason, self._now_ms()))

    # ---- ledger --------------------------------------------------------------------------------------------

    def _start_state(self) -> tuple[int | None, frozenset[str], float | None]:
        with self.factory() as session:
            last = session.execute(
                select(BalanceSnapshot.bar_ts, BalanceSnapshot.equity)
                .where(BalanceSnapshot.run_id == self.run_id)
                .order_by(BalanceSnapshot.bar_ts.desc())
                .limit(1)
            ).first()
            if last is None:
                return None, frozenset(), None
            bar_ts = int(last[0])
            kinds = session.scalars(
                select(RiskEvent.kind).where(
                    RiskEvent.run_id == self.run_id, RiskEvent.bar_ts == bar_ts, RiskEvent.kind.in_(WATCHED)
                )
            ).all()
        return bar_ts, frozenset(kinds), float(last[1])

    def _scan(self) -> None:
        after = self._last_bar if self._last_bar is not None else -1
        with self.factory() as session:
            bars = session.execute(
                select(BalanceSnapshot.bar_ts, BalanceSnapshot.equity)
                .where(BalanceSnapshot.run_id == self.run_id, BalanceSnapshot.bar_ts > after)
                .order_by(BalanceSnapshot.bar_ts)
            ).all()
            if not bars:
                return
            upto = int(bars[-1][0])
            fills = session.scalars(
                select(Fill)
                .where(Fill.run_id == self.run_id, Fill.bar_ts > after, Fill.bar_ts <= upto)
                .order_by(Fill.bar_ts, Fill.id)
            ).all()
            events = session.execute(
                select(RiskEvent.bar_ts, RiskEvent.kind, RiskEvent.detail)
                .where(
                    RiskEvent.run_id == self.run_id,
                    RiskEvent.bar_ts > after,
                    RiskEvent.bar_ts <= upto,
                    RiskEvent.kind.in_(WATCHED),
                )
                .order_by(RiskEvent.bar_ts, RiskEvent.id)
            ).all()
            by_bar: dict[int, list[FillEvent]] = defaultdict(list)
            for f in fills:
                by_bar[int(f.bar_ts)].append(_fill(self.run_id, f))
        kinds: dict[int, dict[str, str]] = defaultdict(dict)
        for bar_ts, kind, detail in events:
            kinds[int(bar_ts)].setdefault(kind, detail)
        for bar_ts, equity in bars:
            self._bar(int(bar_ts), float(equity), by_bar.get(int(bar_ts), []), kinds.get(int(bar_ts), {}))

    def _bar(self, bar_ts: int, equity: float, fills: Sequence[FillEvent], kinds: dict[str, str]) -> None:
        for fill in fills:
            self.notifier.notify(fill)
        self._fills += len(fills)
        for breaker in BREAKERS:
            if breaker in kinds and breaker not in self._active:
                self.notifier.notify(BreakerTrip(self.run_id, bar_ts, breaker, kinds[breaker]))
                self._trips += 1
        if (KILL_SWITCH in kinds) != (KILL_SWITCH in self._active):
            self.notifier.notify(KillSwitchChange(self.run_id, bar_ts, KILL_SWITCH in kinds))
        self._active = frozenset(kinds)
        self._last_bar = bar_ts
        self._summarise(bar_ts, equity)

    def _summarise(self, bar_ts: int, equity: float) -> None:
        if self._equity is None:
            self._equity = equity
        close = bar_ts + self.tf_ms
        if close < self._next_summary:
            return
        moment = self._next_summary
        while self._next_summary <= close:
            moment = self._next_summary
            self._next_summary += DAY_MS
        day = datetime.fromtimestamp((moment - 1) / 1000, UTC).strftime("%Y-%m-%d")
        change = equity / self._equity - 1.0 if self._equity else None
        self.notifier.notify(DailySummary(self.run_id, day, bar_ts, equity, change, self._fills, self._trips))
        self._equity, self._fills, self._trips = equity, 0, 0


def next_summary_ms(after_ms: int, hour_utc: int) -> int:
    """The first moment at `hour_utc`:00 UTC strictly after `after_ms`."""
    at = datetime.fromtimestamp(after_ms / 1000, UTC)
    moment = at.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    if moment <= at:
        moment += timedelta(days=1)
    return int(moment.timestamp() * 1000)


def _turn(before: HealthState | None, now: HealthState) -> HealthTurn | None:
    if now in ("degraded", "stalled") and now != before:
        return cast(HealthTurn, now)
    if now == "alive" and before in ("degraded", "stalled"):
        return "recovered"
    return None


def _fill(run_id: str, row: Fill) -> FillEvent:
    side = cast(Side, row.side)
    return FillEvent(
        run_id,
        row.symbol,
        int(row.bar_ts),
        side,
        float(row.amount),
        float(row.price),
        float(row.fee),
        row.fee_currency,
    )
