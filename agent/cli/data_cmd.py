"""`tradegraph data download | list | check`: fetch candles into the store, show what is there, validate it.

Contracts:
- `download` takes its defaults from the settings (`symbols`, `timeframe`, `exchange.id`); `--exchange`
  overrides `exchange.id`, `TRADEGRAPH_EXCHANGE__API_URL` points ccxt at another host (an emulator).
  Symbols are downloaded one after the other with a Rich progress bar; each file is written only when its
  download succeeded, so a failure leaves every existing file intact. A retried request (network fault,
  rate limit) shows in the progress line (`retry 2, waiting 1.3 s`) and in the symbol's result line
  (`3 retries`), not as log lines.
- `list` shows every candle file, downloaded (`store`) and `bundled`: exchange, symbol, timeframe,
  first and last bar, rows, gaps.
- `check` validates one file (by `--symbol/--timeframe[/--exchange]`, found where `load_candles` looks,
  or by `--file`): duplicates, gaps with exact spans, OHLC sanity. Exit 0 when the data is usable (gaps
  allowed), 1 with a one-line `error:` when it is not.
- Failures are `TradegraphError`s: one line on stderr, exit 1, nothing half-written (see `agent.cli.main`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.dates import iso_date
from agent.config import load_settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from agent.market.service import DownloadPlan
    from agent.market.validate import CandleReport


def register(app: typer.Typer) -> None:
    """Add the `data` command group."""
    group = typer.Typer(help="Download, list and check candle data.", no_args_is_help=True)
    app.add_typer(group, name="data")

    @group.command("download")
    def download(
        exchange: Annotated[str | None, typer.Option(help="ccxt exchange id (default: settings)")] = None,
        symbols: Annotated[str | None, typer.Option(help="comma-separated, e.g. BTC/USDT,ETH/USDT")] = None,
        timeframe: Annotated[str | None, typer.Option(help="1m, 5m, 15m, 1h, 4h or 1d")] = None,
        since: Annotated[
            str | None,
            typer.Option(callback=iso_date, help="first bar, ISO date (UTC); needed if nothing is stored"),
        ] = None,
        until: Annotated[
            str | None, typer.Option(callback=iso_date, help="stop before this ISO date (default: now)")
        ] = None,
    ) -> None:
        """Download candles into <data_dir>/store/<exchange>/, fetching only what is missing."""
        _download(exchange, symbols, timeframe, since, until)

    @group.command("list")
    def list_files() -> None:
        """List downloaded and bundled candle files with their span, rows and gaps."""
        _list()

    @group.command("check")
    def check(
        symbol: Annotated[str | None, typer.Option(help="e.g. BTC/USDT")] = None,
        timeframe: Annotated[str | None, typer.Option(help="default: settings, or the file name")] = None,
        exchange: Annotated[str | None, typer.Option(help="store folder (default: binance)")] = None,
        file: Annotated[Path | None, typer.Option(help="check this Feather file instead")] = None,
    ) -> None:
        """Validate candles: duplicates, gaps (exact spans), OHLC sanity. Exit 1 if unusable."""
        _check(symbol, timeframe, exchange, file)


def _download(
    exchange: str | None, symbols: str | None, timeframe: str | None, since: str | None, until: str | None
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.market.exchange import make_exchange
    from agent.market.retry import RetryPolicy
    from agent.market.service import MarketDataService
    from agent.market.store import CandleStore

    overrides: dict[str, object] = {}
    if exchange:
        overrides["exchange"] = {"id": exchange}
    if symbols is not None:
        overrides["symbols"] = symbols
    if timeframe is not None:
        overrides["timeframe"] = timeframe
    settings = load_settings(**overrides)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        transient=True,
    )
    retries = RetryProgress(progress)
    policy = RetryPolicy.from_settings(settings.exchange, sleep=retries.sleep)
    service = MarketDataService(make_exchange(settings), CandleStore(settings.data_dir), policy)
    console = _console()
    reports = []
    counts: list[int] = []
    try:
        with progress:
            for symbol in settings.symbols:
                label = f"{settings.exchange.id} {symbol} {settings.timeframe}"
                task = progress.add_task(label, total=None)
                retries.start(task, label)
                on_page, on_plan = _progress_callbacks(progress, task, retries.page)
                reports.append(
                    service.download(
                        symbol, settings.timeframe, since, until, on_page=on_page, on_plan=on_plan
                    )
                )
                counts.append(retries.count)
    finally:  # what was stored before a failure is reported too
        for r, n in zip(reports, counts, strict=True):
            tried = f" ({n} {'retry' if n == 1 else 'retries'})" if n else ""
            console.print(
                f"{r.exchange} {r.symbol} {r.timeframe}: +{r.new_bars} bars in {r.requests} requests{tried}, "
                f"{r.rows} rows {_ts(r.first)} → {_ts(r.last)}, {len(r.gaps)} gaps → {r.path}"
            )


class RetryProgress:
    """The retry policy's `sleep`, shown in the progress line of the symbol being downloaded."""

    def __init__(self, progress: Progress, sleep: Callable[[float], None] = time.sleep) -> None:
        self.progress = progress
        self._sleep = sleep
        self.task: TaskID | None = None
        self.label = ""
        self.count = 0

    def start(self, task: TaskID, label: str) -> None:
        """A new symbol: its task and label, no retries yet."""
        self.task, self.label, self.count = task, label, 0

    def sleep(self, seconds: float) -> None:
        """Wait before a retry, saying so in the progress line."""
        self.count += 1
        if self.task is not None:
            self.progress.update(
                self.task, description=f"{self.label} [yellow]retry {self.count}, waiting {seconds:.1f} s[/]"
            )
        self._sleep(seconds)

    def page(self) -> None:
        """A page arrived: the label again, with the retries so far."""
        if self.task is not None and self.count:
            self.progress.update(self.task, description=f"{self.label} ({self.count} retried)")


def _progress_callbacks(
    progress: Progress, task: TaskID, after_page: Callable[[], None] = lambda: None
) -> tuple[Callable[[int], None], Callable[[DownloadPlan], None]]:
    """Advance `task` per page fetched; size it once the download is planned."""

    def on_page(rows: int) -> None:
        progress.advance(task, rows)
        after_page()

    def on_plan(plan: DownloadPlan) -> None:
        progress.update(task, total=max(plan.expected_bars, 1))

    return on_page, on_plan


def _list() -> None:
    from rich.table import Table

    from agent.errors import DataError
    from agent.market.store import CandleStore, read_candle_file
    from agent.market.validate import check_candles
    from agent.textsafe import for_terminal

    settings = load_settings()
    files = CandleStore(settings.data_dir).files()
    console = _console()
    if not files:
        console.print(f"no candle files under {settings.data_dir} (run: tradegraph data download ...)")
        return
    table = Table(title=f"candles in {settings.data_dir}")
    for column in ("source", "exchange", "symbol", "timeframe", "first bar", "last bar", "rows", "gaps"):
        table.add_column(column, justify="right" if column in ("rows", "gaps") else "left")
    for f in files:
        try:
            report = check_candles(read_candle_file(f.path), f.timeframe)
        except DataError as e:
            why = for_terminal(e)
            table.add_row(f.source, f.exchange, f.symbol, f.timeframe, "unreadable", why, "-", "-")
            continue
        gaps = f"{len(report.gaps)} ({report.missing_bars} bars)" if report.gaps else "0"
        table.add_row(
            f.source,
            f.exchange,
            f.symbol,
            f.timeframe,
            _ts(report.first),
            _ts(report.last),
            str(report.rows),
            gaps,
        )
    console.print(table)


def _check(symbol: str | None, timeframe: str | None, exchange: str | None, file: Path | None) -> None:
    from agent.errors import ConfigError, DataError
    from agent.market.candles import timeframe_ms
    from agent.market.store import candidate_paths, parse_file_name, read_candle_file
    from agent.market.validate import check_candles

    if (file is None) == (symbol is None):
        raise ConfigError("give either --symbol (with --timeframe) or --file")
    if file is not None:
        if not file.is_file():
            raise DataError(f"no such file: {file}")
        parsed = parse_file_name(file)
        timeframe = timeframe or (parsed[1] if parsed else None)
        if timeframe is None:
            raise ConfigError(f"cannot tell the timeframe from the name {file.name}; give --timeframe")
        path = file
    else:
        assert symbol is not None
        settings = load_settings()
        timeframe = timeframe or settings.timeframe
        candidates = candidate_paths(settings.data_dir, symbol, timeframe, exchange or "binance")
        path = next((p for p in candidates if p.exists()), None)  # type: ignore[assignment]
        if path is None:
            raise DataError(f"no {timeframe} candles for {symbol} in {settings.data_dir}")
    timeframe_ms(timeframe)
    report = check_candles(read_candle_file(path), timeframe)
    _print_report(_console(), path, report)
    if not report.usable:
        raise DataError(f"{path}: candles are not usable: {'; '.join(report.problems)}")


def _print_report(console: Console, path: Path, report: CandleReport) -> None:
    console.print(f"file: {path}")
    console.print(f"{report.rows} rows of {report.timeframe}, {_ts(report.first)} → {_ts(report.last)}")
    console.print(f"duplicates: {report.duplicates}, off-grid bars: {report.misaligned}")
    console.print(
        f"OHLC: {report.nan_rows} NaN rows, {report.high_below_body} high < max(open, close), "
        f"{report.low_above_body} low > min(open, close), {report.negative_volume} negative volume"
    )
    console.print(f"gaps: {len(report.gaps)} ({report.missing_bars} missing bars)")
    for gap in report.gaps:
        console.print(f"  gap {gap}")
    console.print("usable" if report.usable else "NOT usable: " + "; ".join(report.problems))


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, highlight=False)


def _ts(value: object) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"
