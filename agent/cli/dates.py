"""Date options of the CLI (`--start`, `--end`, `--since`, `--until`, `--at`): ISO 8601 only.

Contracts:
- `iso_date` is a Typer option callback. A value must be ISO 8601, date first: `2025-01-02`,
  `2025-01-02 17:00`, `2025-01-02T17:00:00Z`, `2025-01-02T17:00+02:00` (no offset = UTC). Anything else
  (`01/02/2025`, `2 Jan 2025`, `yesterday`) is refused before the command runs: one `error:` line on stderr
  naming the option and the accepted form, exit status 2 (a usage error). Day-first or month-first forms are
  never guessed.
- An accepted value is passed on unchanged (the commands parse it as UTC, `agent.market.candles`).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime

import typer

_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")
FORMS = "YYYY-MM-DD, 'YYYY-MM-DD HH:MM' or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM], in UTC unless an offset is given"


def is_iso(value: str) -> bool:
    """Whether `value` is an ISO 8601 date or timestamp written date first (see the module contract)."""
    text = value.strip()
    if not _DATE_FIRST.match(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def iso_date(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Option callback: `value` unchanged when ISO, else one line on stderr and exit 2."""
    if value is None or ctx.resilient_parsing or is_iso(value):
        return value
    from agent.textsafe import for_plain_terminal

    name = param.opts[0] if param.opts else str(param.name)
    print(
        f"error: {name} {for_plain_terminal(repr(value))} is not an ISO date; use {FORMS}, e.g. 2025-01-02",
        file=sys.stderr,
    )
    raise typer.Exit(2)
