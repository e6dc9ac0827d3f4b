"""Model text is data: the one place that makes free text safe to store, print, export and publish.

Free text from the model (rationale, reasoning, invalidation, raw content), and the reasons and error
messages built around it, reaches four sinks. Each has its own function here, and every writer or renderer
of such text goes through it:

- `for_storage(text)`: before a database write. NUL (U+0000; PostgreSQL refuses it in text) and lone
  surrogates (U+D800-U+DFFF; not encodable as UTF-8, so SQLite's driver raises) become U+FFFD. Nothing
  else changes: the length is kept, the call is idempotent, and `None` stays `None`.
- `for_terminal(text)`: before a terminal. Returns a `rich.text.Text`, which Rich never parses for markup
  (`[bold]`, an unbalanced `[/bold]`) or emoji codes, so brackets show as typed. C0 and C1 control
  characters (except newline and tab), DEL and the bidirectional-override characters are shown as
  visible escapes (`\\x1b`, `\\u202e`), so no escape sequence reaches the terminal; a lone surrogate
  becomes U+FFFD. `for_plain_terminal` gives the same text as a `str`, for `print`.
- `csv_cell(value)`: before a CSV export. A text cell starting with `=`, `+`, `-`, `@`, a tab or a
  carriage return gets a leading `'` (OWASP CSV injection), so a spreadsheet shows it as text instead of
  running it as a formula. Anything that is not a `str` (numbers, negative ones included, None, NaN) is
  returned unchanged. `csv_frame(frame)` applies it to a DataFrame's text columns.
- `for_html(text, limit)`: before an HTML page. Cuts to `limit` characters first (with "…"), then shows
  control characters as escapes and lone surrogates as U+FFFD (as `for_plain_terminal`), then
  `html.escape`s (quotes included): an entity such as `&amp;` is never cut in half.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, overload

from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

REPLACEMENT = "\ufffd"
ELLIPSIS = "…"
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters a spreadsheet reads as the start of a formula (or that hide one)."""

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@overload
def for_storage(text: str) -> str: ...
@overload
def for_storage(text: None) -> None: ...
def for_storage(text: str | None) -> str | None:
    """`text` with NUL and lone surrogates replaced by U+FFFD (see the module contract)."""
    if text is None:
        return None
    return _UNSTORABLE.sub(REPLACEMENT, text)


def for_plain_terminal(text: object) -> str:
    """`str(text)` with control characters shown as escapes and lone surrogates replaced; for `print`."""
    shown = _UNPRINTABLE.sub(_visible_escape, str(text))
    return _SURROGATE.sub(REPLACEMENT, shown)


def for_terminal(text: object, style: str = "") -> Text:
    """`text` as a Rich `Text` in `style`: shown literally, never read as markup (see the module contract)."""
    return Text(for_plain_terminal(text), style=style)


def csv_cell(value: object) -> object:
    """`value`, with a leading `'` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(CSV_TRIGGERS):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text (object and string dtype) columns went through `csv_cell`."""
    out = frame.copy()
    for column in out.select_dtypes(include=["object", "string"]).columns:
        out[column] = out[column].map(csv_cell, na_action="ignore")
    return out


def for_html(text: object, limit: int | None = None) -> str:
    """`str(text)` cut to `limit` characters (then "…"), then made printable and HTML-escaped."""
    plain = str(text)
    if limit is not None and len(plain) > limit:
        plain = plain[: max(limit - 1, 0)] + ELLIPSIS
    return html.escape(for_plain_terminal(plain), quote=True)


def _visible_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
