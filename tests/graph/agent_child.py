"""Runs the agent over the last N bars in its own process (the resume test kills it with SIGKILL).

Usage: python -m tests.graph.agent_child DB_URL LLM_BASE_URL RUN_ID BARS REPORTS_DIR
Prints one line per tick: `<bar_ts> <status>`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.graph.backtest import run_agent_backtest
from tests.graph.helpers import emulator_settings, short_source


def main() -> None:
    db_url, base_url, run_id, bars, reports = sys.argv[1:6]
    settings = emulator_settings(db_url, base_url)
    result = run_agent_backtest(
        settings,
        strategy="llm",
        start=None,
        end=None,
        last_bars=int(bars),
        run_id=run_id,
        reports_dir=Path(reports),
        show_progress=False,
        source=short_source(settings),
    )
    for out in result.outcomes:
        print(out.bar_ts, out.status, flush=True)


if __name__ == "__main__":
    main()
