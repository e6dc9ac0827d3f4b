"""`tradegraph eval CAMPAIGN.toml`: run (or resume) an evaluation campaign and print its table.

Contracts:
- A bad campaign file, an unknown strategy or missing data is one line on stderr and a non-zero exit,
  before any run is recorded (`agent.eval.runner`).
- Each cell prints one line as it finishes (run, resumed or read back); then the window tables, the
  cutoff table and the report's path (`<reports dir>/<campaign id>/report.html`, with `table.csv` and
  `campaign.json` beside it).
- Rerunning the same file with the same settings continues an interrupted campaign: finished cells are read
  back, an interrupted LLM cell resumes from the response cache.
- `--executor local|ray` (default `[scale] executor`): the cells as tasks of the local pool (`--workers`,
  default 1: one after another in this process) or of a Ray cluster (`--ray-address`).
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the `eval` command."""
    app.command("eval")(evaluate)


def evaluate(
    campaign: Path = typer.Argument(..., help="campaign file (TOML), e.g. data/campaigns/example.toml"),
    reports_dir: Path | None = typer.Option(
        None, "--reports-dir", help="default: the configured reports dir"
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="the LLM cells' progress bars"),
    executor: str | None = typer.Option(None, "--executor", help="local or ray; default [scale] executor"),
    workers: int | None = typer.Option(None, "--workers", help="local processes; default 1 (this process)"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="auto or ray://host:10001"),
) -> None:
    """Run every cell of an evaluation campaign and write one report: does the LLM beat the rules?"""
    import time

    from rich.console import Console

    from agent.config import load_settings
    from agent.eval import report, table
    from agent.eval.campaign import load_campaign
    from agent.eval.runner import CellResult, run_campaign
    from agent.scale.executor import make_executor
    from agent.textsafe import for_terminal

    settings = load_settings()
    loaded = load_campaign(campaign, settings)
    console = Console()
    total = len(loaded.cells)
    started = time.perf_counter()

    def start() -> None:
        console.print(
            for_terminal(f"campaign {loaded.id}: {total} cells ({loaded.preset.campaign.name})"),
            soft_wrap=True,
        )

    def line(result: CellResult) -> None:
        state = "read back" if result.resumed else "done"
        ret = result.metrics.strategy.total_return
        where = f"[{result.cell.index + 1}/{total}] {result.cell.key}"
        text = f"{where}: {state}, return {ret:+.2%} ({result.run_id})"
        console.print(for_terminal(text), soft_wrap=True)

    folder = Path(reports_dir or settings.reports_dir).absolute()
    kind = executor or settings.scale.executor
    runner = make_executor(
        kind,
        workers or settings.scale.workers or (None if kind == "ray" else 1),
        ray_address or settings.scale.ray_address,
    )
    results = run_campaign(
        loaded,
        settings,
        folder,
        executor=runner,
        console=console,
        show_progress=progress,
        on_start=start,
        on_cell=line,
    )
    groups = table.build(loaded, results)
    cutoffs = table.cutoff_rows(loaded, results)
    console.print(report.terminal(loaded, groups, cutoffs))
    path = report.write(folder / loaded.id, loaded, results, groups, cutoffs)
    console.print(f"{total} cells in {time.perf_counter() - started:.1f} s; report: [bold]{path}[/]")
