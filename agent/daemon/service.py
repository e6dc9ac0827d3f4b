"""The paper-trading daemon: lease, candle feed, agent runner and scheduler assembled, then run until stopped.

    open_db → plan (run id, window) → lease → feed + open_agent → scheduler(tick job) → watch → shut down

Contracts:
- Live and replay differ only in the clock (`SystemClock` / `SimulatedClock`), the exchange client (ccxt /
  `ReplayExchange`) and the trigger (cron at candle close + `tick_delay_s` / every bar÷speed real seconds);
  the tick job, the feed, the graph and the ledger are the same code.
- Bad input (unknown strategy, bad window, live mode on the replay exchange) fails before the lease is taken
  or anything is written. A second daemon on the same database fails with `LeaseHeld` before any work.
- A replay's simulated clock starts at the later of the window start and the close of the run's last
  processed bar, so a restarted replay continues where it stopped; it ends by itself at the window's end
  (the run is then marked done).
- The run row holds the run's metric set (`agent.runs.metrics`, the figures every run kind stores, read
  from the ledger by `agent.evaluation.agent_report.agent_run_metrics`): refreshed after a wake-up that
  ticked a bar, at most every `agent.runs.live.REFRESH_S` seconds (`LiveMetrics`; a failure there is
  logged and the daemon goes on), and written once more when the daemon stops, so `tradegraph runs show`
  of a running or stopped daemon shows its figures.
- Stopping (SIGTERM/SIGINT via `StopSignal`, the end of a replay, a lost lease): no new wake-up starts, the
  running one stops between bars, and is waited for up to `stop_grace_s`. If a tick is still running then
  (a slow model call), the lease is released and `on_abandon` is called (the CLI exits the process at once:
  ticks are transactional and resume from their checkpoint). The lease is always released on the way out.
- Faults keep it running, or show in `tradegraph status` (`agent.daemon.health`): the watch thread renews
  the lease every `heartbeat_interval_s(ttl)` with the daemon's clock, and a database error there is
  logged and retried at the next beat; the scheduler's job store survives database errors (retried every
  `retry_s`: the replay trigger's interval, or `DaemonOptions.retry_s`); after a failed wake-up a live
  daemon tries again after `retry_s` (a replay at its next wake-up), after one that left a backlog at
  once; a bar failing `discard_after` times in a row from its checkpoint is re-run from scratch (`TickJob`).
- A fault that ends the daemon after the lease was taken (the exchange unreachable at start) is logged
  (`daemon.log`, event `daemon_failed`) and becomes the lease note, which `tradegraph status` shows; then
  it propagates to the caller as before.
- Notifications (`agent.daemon.alerts` → `agent.notify`): with a notifier (given, or `[notify] urls`), the
  fills, breaker trips and kill-switch changes of the bars a wake-up ticked, the daily summary and health
  changes are queued for sending; a bad URL fails before the lease. Sending never blocks a tick; the
  daemon closes the notifier it made on the way out, waiting up to `stop_grace_s` for what is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.daemon import scheduler as sched
from agent.daemon.alerts import DaemonAlerts
from agent.daemon.clock import Clock, SimulatedClock, SystemClock
from agent.daemon.feed import CachedStore, CandleFeed
from agent.daemon.health import heartbeat_interval_s, read_health
from agent.daemon.lease import Holder, Lease, LeaseLost
from agent.daemon.logging import DropMessages, utc_minute
from agent.daemon.plan import (
    RunPlan,
    Window,
    default_run_id,
    history_start,
    live_window,
    replay_window,
)
from agent.daemon.signals import StopSignal
from agent.daemon.tick_job import REPLAY_FINISHED, TickJob, WakeReport
from agent.db.models import Run
from agent.errors import ConfigError
from agent.market.candles import timeframe_ms
from agent.notify import Notifier, make_notifier
from agent.redact import mask_url_credentials
from agent.runs.lifecycle import RunKind, check_run_id
from agent.runs.live import LiveMetrics

if TYPE_CHECKING:
    from agent.graph.runner import AgentRunner
    from agent.runs.metrics import RunMetrics

log = logging.getLogger("tradegraph.daemon")


@dataclass(frozen=True)
class DaemonOptions:
    """How to run the daemon (the `tradegraph run` options)."""

    replay: bool = False
    speed: float = 3600.0
    start: str | None = None
    end: str | None = None
    run_id: str | None = None
    strategy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    max_bars: int = 24
    """Most bars ticked per wake-up (catch-up after downtime continues at once in the next wake-up)."""
    lease_ttl_s: float = 30.0
    stop_grace_s: float = 2.0
    history_bars: int | None = None
    """Bars loaded before the first bar; None = `agent.market.history.history_bars` (as the backtests)."""
    discard_after: int = 3
    """Failures in a row after which a bar's checkpoint is discarded and the bar re-run from scratch."""
    retry_s: float = 30.0
    """Live: a failed wake-up (or job-store access) is retried this soon, not at the next candle close."""


@dataclass(frozen=True)
class DaemonResult:
    """How a daemon run ended."""

    run_id: str
    reason: str
    last_bar: int | None
    finished: bool
    abandoned: bool


class Daemon:
    """One daemon process (see the module contract)."""

    def __init__(
        self,
        settings: Settings,
        options: DaemonOptions,
        *,
        stop: StopSignal | None = None,
        exchange: Any | None = None,
        clock: Clock | None = None,
        on_abandon: Any | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.options = options
        self.settings = _effective(settings, options)
        self._own_stop = stop is None
        self.stop = stop or StopSignal()
        self._exchange = exchange
        self._clock = clock
        self.on_abandon = on_abandon
        self.plan: RunPlan | None = None
        self.lease: Lease | None = None
        self.notifier = notifier
        """Where notifications go: the one given, else `[notify]`'s (`agent.notify.make_notifier`)."""
        self._alerts: DaemonAlerts | None = None

    def run(self) -> DaemonResult:
        """Run until stopped; returns why it stopped."""
        from agent.db.session import open_db

        _check(self.options, self.settings, injected=self._exchange is not None)
        draft = self._draft()  # bad input fails here, before the database is touched
        own = self.notifier is None
        engine, factory = open_db(self.settings.db_url)
        notifier = None
        try:
            notifier = make_notifier(self.settings.notify) if own else self.notifier  # a bad URL fails here
            self.plan = plan = self._plan(factory, draft)
            self.lease = lease = Lease(factory, Holder.current(), self.options.lease_ttl_s)
            lease.acquire(plan.run_id, plan.feed)
            note = None
            try:
                return self._serve(factory, plan, lease, notifier)
            except Exception as e:  # e.g. the exchange unreachable at start: daemon.log and status say so
                note = _failed(e)
                raise
            finally:
                _release(lease, note or self.stop.reason)
        finally:
            engine.dispose()
            if own and notifier is not None:
                notifier.close(self.options.stop_grace_s)
            if self._own_stop:
                self.stop.close()

    # ---- planning ------------------------------------------------------------------------------------------

    def _draft(self) -> RunPlan:
        """The plan as far as it follows from the options alone (live window still open)."""
        from agent.graph.factory import rule_strategy

        s, o = self.settings, self.options
        strategy = o.strategy or s.strategy
        rule = rule_strategy(s, strategy, o.params)  # an unknown strategy or bad parameter fails here
        bars = _history_bars(strategy, rule, o.history_bars)
        feed = "replay" if o.replay else "live"
        window = replay_window(s.data_dir, s.symbols, s.timeframe, o.start, o.end) if o.replay else None
        run_id = (
            check_run_id(o.run_id, "--run-id")
            if o.run_id
            else default_run_id(s, strategy, o.params, feed, window)
        )
        start = history_start(window, s.timeframe, bars) if window is not None else 0
        return RunPlan(run_id, feed, strategy, dict(o.params), window or Window(0), start)

    def _plan(self, factory: sessionmaker[Session], draft: RunPlan) -> RunPlan:
        """The draft checked against the run already recorded under its id, with the live window."""
        s, o = self.settings, self.options
        run_id, strategy = draft.run_id, draft.strategy
        with factory() as session:
            run = session.get(Run, run_id)
            if run is not None and (run.kind, run.strategy, list(run.symbols), run.timeframe) != (
                RunKind.DAEMON,
                strategy,
                list(s.symbols),
                s.timeframe,
            ):
                raise ConfigError(
                    f"run {run_id} is a {run.kind} run of {run.strategy} on {', '.join(run.symbols)} "
                    f"{run.timeframe}; choose another --run-id"
                )
            recorded = run.start_ts if run is not None else None
        if draft.feed == "replay":
            return draft
        window = live_window(recorded, (self._clock or SystemClock()).now_ms(), s.timeframe)
        from agent.graph.factory import rule_strategy

        bars = _history_bars(strategy, rule_strategy(s, strategy, o.params), o.history_bars)
        start = history_start(window, s.timeframe, bars)
        return RunPlan(run_id, draft.feed, strategy, draft.params, window, start)

    # ---- serving -------------------------------------------------------------------------------------------

    def _serve(
        self, factory: sessionmaker[Session], plan: RunPlan, lease: Lease, notifier: Notifier | None
    ) -> DaemonResult:
        from agent.graph.factory import open_agent
        from agent.ledger import LedgerReader

        s, o = self.settings, self.options
        tf = timeframe_ms(s.timeframe)
        last = LedgerReader(factory, s).last_processed_bar(plan.run_id)
        clock = self._clock or self._default_clock(plan, last, tf)
        exchange = self._exchange if self._exchange is not None else _make_exchange(s, o.replay)
        feed = CandleFeed(
            _service(s, exchange), s.symbols, s.timeframe, plan.history_start_ms, set_exchange_clock=o.replay
        )
        retry_s = sched.replay_trigger(s.timeframe, o.speed).interval_length if o.replay else o.retry_s
        scheduler = sched.make_scheduler(s.db_url, retry_s)
        with ExitStack() as stack:
            runner = stack.enter_context(
                open_agent(
                    s,
                    run_id=plan.run_id,
                    kind=RunKind.DAEMON,
                    strategy=plan.strategy,
                    params=plan.params,
                    source=feed.source,
                    factory=factory,
                    start_ts=plan.window.start_ms,
                    end_ts=plan.window.end_ms,
                )
            )
            job = TickJob(
                runner,
                feed,
                clock,
                plan.window,
                factory=factory,
                stale_after_bars=s.stale_after_bars,
                max_bars=o.max_bars,
                stop=self.stop,
                lease=lease,
                next_wake_ms=lambda: sched.next_run_ms(scheduler),
                discard_after=o.discard_after,
            )
            trigger = (
                sched.replay_trigger(s.timeframe, o.speed)
                if o.replay
                else sched.cron_trigger(s.timeframe, s.tick_delay_s)
            )
            figures = LiveMetrics(
                factory, plan.run_id, lambda: _measure(factory, plan.run_id, feed, s, runner)
            )
            self._alerts = alerts = _alerts(notifier, factory, plan, s, tf)
            sched.schedule(
                scheduler,
                _measured(job, figures, alerts),
                trigger,
                misfire_grace_s=None if o.replay else max(60, tf // 2000),
                rerun_in=lambda: self._rerun_in(job),
            )
            quiet = DropMessages("maximum number of running instances reached")
            if o.replay:
                logging.getLogger("apscheduler.scheduler").addFilter(quiet)
            try:
                if not self.stop.requested:  # e.g. Ctrl-C while the embedded model was starting
                    scheduler.start()
                    log.info(
                        "daemon started: run %s (%s, %s on %s %s)%s",
                        plan.run_id,
                        plan.feed,
                        plan.strategy,
                        ",".join(s.symbols),
                        s.timeframe,
                        _resume_note(last, lease),
                        extra={
                            "event": "started",
                            "run_id": plan.run_id,
                            "feed": plan.feed,
                            "pid": lease.holder.pid,
                            "last_bar_ts": last,
                        },
                    )
                    self._watch(lease, scheduler, clock)
            finally:
                abandoned = self._shutdown(scheduler, job, lease)
                logging.getLogger("apscheduler.scheduler").removeFilter(quiet)
            finished = self.stop.reason == REPLAY_FINISHED
            figures.close(finished)  # the last figures; the run is done at a replay's end
            last_bar = runner.last_processed_bar()
        close = getattr(exchange, "close", None)
        if callable(close):
            close()
        reason = self.stop.reason or "stopped"
        log.info(
            "daemon stopped (%s): run %s, last bar %s",
            reason,
            plan.run_id,
            utc_minute(last_bar),
            extra={"event": "stopped", "run_id": plan.run_id, "reason": reason, "last_bar_ts": last_bar},
        )
        return DaemonResult(plan.run_id, reason, last_bar, finished, abandoned)

    def _default_clock(self, plan: RunPlan, last: int | None, tf: int) -> Clock:
        if not self.options.replay:
            return SystemClock()
        start = plan.window.start_ms if last is None else max(plan.window.start_ms, last + tf)
        return SimulatedClock(start, self.options.speed, plan.window.end_ms)

    def _rerun_in(self, job: TickJob) -> float | None:
        """When to wake up again after a wake-up, if sooner than the trigger (see the module contract)."""
        report = job.last_report
        if report is None or self.stop.requested:
            return None
        if report.failed:
            return None if self.options.replay else self.options.retry_s
        return 0.0 if report.backlog else None

    def _watch(self, lease: Lease, scheduler: Any, clock: Clock) -> None:
        """Renew the lease (with the daemon's clock) until a stop is requested."""
        while not self.stop.wait(heartbeat_interval_s(lease.ttl_s)):
            try:
                lease.heartbeat(clock_ms=clock.now_ms(), next_tick_ms=sched.next_run_ms(scheduler))
            except LeaseLost as e:
                log.error("%s; stopping", e, extra={"event": "lease_lost"})
                self.stop.request("lease lost")
            except SQLAlchemyError as e:  # status shows the late heartbeat; try again at the next beat
                log.warning("heartbeat failed: %s", e, extra={"event": "heartbeat_error"})
            if self._alerts is not None:
                self._alerts.beat()

    def _shutdown(self, scheduler: Any, job: TickJob, lease: Lease) -> bool:
        """Stop scheduling, wait for the running wake-up; True when it had to be abandoned."""
        if not self.stop.requested:
            self.stop.request("daemon error")
        log.info("stopping (%s)", self.stop.reason, extra={"event": "stopping", "reason": self.stop.reason})
        job.close()
        try:
            scheduler.shutdown(wait=False)
        except Exception as e:  # noqa: BLE001 - already stopped
            log.debug("scheduler shutdown: %s", e)
        sched.unschedule()
        if job.idle.wait(self.options.stop_grace_s):
            return False
        log.warning(
            "abandoning the tick in progress after %.1f s; it resumes from its checkpoint at the next start",
            self.options.stop_grace_s,
            extra={"event": "abandon_tick"},
        )
        _release(lease, self.stop.reason)
        if self.on_abandon is not None:
            for handler in logging.getLogger().handlers:
                handler.flush()
            self.on_abandon()
        job.idle.wait()
        return True


def _measured(job: TickJob, figures: LiveMetrics, alerts: DaemonAlerts | None) -> Callable[[], WakeReport]:
    """The tick job, then the run row's figures refreshed (when due) and the notifications of its bars
    queued, after a wake-up that ticked a bar."""

    def wake() -> WakeReport:
        report = job()
        if report.ticked:
            figures.refresh()
            if alerts is not None:
                alerts.after_wake()
        return report

    return wake


def _alerts(
    notifier: Notifier | None, factory: sessionmaker[Session], plan: RunPlan, s: Settings, tf: int
) -> DaemonAlerts | None:
    """The notifications of the run (None when no notifier is configured)."""
    if notifier is None:
        return None
    return DaemonAlerts(
        notifier,
        factory,
        plan.run_id,
        tf_ms=tf,
        first_bar_ms=plan.window.start_ms,
        summary_hour_utc=s.notify.summary_hour_utc,
        health=lambda: read_health(factory, SystemClock().now_ms(), plan.run_id),
    )


def _measure(
    factory: sessionmaker[Session], run_id: str, feed: CandleFeed, settings: Settings, runner: AgentRunner
) -> RunMetrics | None:
    """The run's metric set from its ledger, beside buy & hold and cash (None before its first bar)."""
    from agent.evaluation.agent_report import agent_run_metrics

    measured = agent_run_metrics(factory, run_id, feed.source, settings, runner.rt.rules)
    return None if measured is None else measured[0]


def _failed(error: Exception) -> str:
    """Log a failure that ended the daemon (daemon.log has it); the lease note `tradegraph status` shows."""
    reason = f"failed: {type(error).__name__}: {error}"
    log.error("daemon %s", reason, extra={"event": "daemon_failed"})
    return mask_url_credentials(" ".join(reason.split()))[:500]


def _release(lease: Lease, note: str | None) -> None:
    """Free the lease; if the database refuses now, it expires after its TTL."""
    try:
        lease.release(note)
    except SQLAlchemyError as e:
        log.warning(
            "cannot release the lease (it expires after %g s): %s",
            lease.ttl_s,
            e,
            extra={"event": "release_error"},
        )


def _effective(settings: Settings, options: DaemonOptions) -> Settings:
    """Replay always trades on the bundled data with Binance's rules, whatever exchange is configured."""
    if options.replay and settings.exchange.id != "replay":
        return settings.model_copy(update={"exchange": settings.exchange.model_copy(update={"id": "replay"})})
    return settings


def _check(o: DaemonOptions, settings: Settings, *, injected: bool) -> None:
    if o.speed <= 0:
        raise ConfigError(f"--speed must be positive (got {o.speed:g})")
    if o.max_bars < 1:
        raise ConfigError(f"--max-catchup must be at least 1 (got {o.max_bars})")
    if o.history_bars is not None and o.history_bars < 0:
        raise ConfigError(f"--history-bars must be >= 0 (got {o.history_bars})")
    if o.lease_ttl_s <= 0:
        raise ConfigError(f"--lease-ttl must be positive (got {o.lease_ttl_s:g})")
    if o.retry_s <= 0:
        raise ConfigError(f"retry_s must be positive (got {o.retry_s:g})")
    if o.discard_after < 1:
        raise ConfigError(f"--discard-after must be at least 1 (got {o.discard_after})")
    if not o.replay and (o.start or o.end):
        raise ConfigError("--start and --end apply to --replay only")
    if not o.replay:
        sched.cron_trigger(settings.timeframe, settings.tick_delay_s)  # a delay of a whole bar fails here
    if not o.replay and not injected and settings.exchange.id == "replay":
        raise ConfigError(
            "exchange.id is 'replay': add --replay to replay the bundled data, or configure a "
            'ccxt exchange (e.g. exchange.id = "binance") for live paper trading'
        )


def _make_exchange(settings: Settings, replay: bool) -> Any:
    if replay:
        from agent.market.replay import ReplayExchange

        return ReplayExchange(settings.data_dir)
    from agent.market.exchange import make_exchange

    return make_exchange(settings)


def _service(settings: Settings, exchange: Any) -> Any:
    from agent.market.retry import RetryPolicy
    from agent.market.service import MarketDataService

    policy = RetryPolicy.from_settings(settings.exchange)
    return MarketDataService(exchange, CachedStore(settings.data_dir), policy)


def _resume_note(last: int | None, lease: Lease) -> str:
    parts = []
    if last is not None:
        parts.append(f"; resuming after bar {last}")
    if lease.took_over:
        parts.append(f"; lease taken over ({lease.took_over})")
    return "".join(parts)


def _history_bars(strategy: str, rule: Any, requested: int | None) -> int:
    """The run's history before its first bar, by the rule backtests and agent backtests use."""
    from agent.graph.mode import StrategyMode
    from agent.market.history import history_bars

    warmup = int(rule.warmup_bars()) if rule is not None else 0
    return history_bars(StrategyMode.of(strategy).asks_model, warmup, requested)
