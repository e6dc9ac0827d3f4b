"""HTML building blocks of the dashboard: the layout, tables, formatting. Every value goes through
`agent.textsafe.for_html` (model text included), so nothing read from the database becomes markup.

Contracts:
- `page(...)` is a whole document: the navigation, the body given (already safe HTML), plotly.js from
  `/assets/plotly.js` when the page has charts and the dashboard script from `/assets/dashboard.js`, both
  with the response's CSP nonce; the token in `<meta name="tg-token">` only when given (the caller passes
  it when the request presented it, or when reads are open on the loopback interface).
- `cell(value)`: text escaped, numbers formatted, None as an empty cell. `table(...)` never takes raw
  HTML from the database: only cells built here or `Safe` fragments built by the pages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from agent.textsafe import for_html

NAV = (("/", "Overview"), ("/runs", "Runs"), ("/decisions", "Decisions"), ("/llm", "LLM"))
RATIONALE_SHOWN = 160
STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:center}
header a{color:#cde;text-decoration:none}header a.on{color:#fff;font-weight:bold}
main{padding:1em}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef}.state-alive{color:#2a2}.state-degraded{color:#c80}.state-stalled,.state-stopped{color:#c22}
pre{white-space:pre-wrap;background:#f3f3f3;padding:.5em;max-width:100em}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;padding:.5em 1em}
button{margin-right:.5em}.muted{color:#777}
"""


class Safe(str):
    """A fragment built by the dashboard from escaped parts: placed as is."""


def esc(value: object, limit: int | None = None) -> Safe:
    """`value` escaped for HTML (cut to `limit` characters)."""
    return Safe(for_html(value, limit))


def fmt(value: object, digits: int = 4) -> str:
    """A number shown compactly; None and NaN as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


def when(ms: int | None) -> str:
    """Milliseconds since the epoch as a UTC time."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def stamp(at: datetime | None) -> str:
    """A wall-clock time in UTC, to the second."""
    if at is None:
        return ""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cell(value: object) -> Safe:
    """One table cell's content: a `Safe` fragment as is, anything else formatted and escaped."""
    if isinstance(value, Safe):
        return value
    return esc(fmt(value))


def link(href: str, text: object) -> Safe:
    """A link to a dashboard path (escaped, quotes included) with escaped text."""
    return Safe(f'<a href="{for_html(href)}">{for_html(text)}</a>')


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, body_attrs: str = "", table_id: str = ""
) -> Safe:
    """A table; `body_attrs` are attributes the page built (e.g. data-live) for the tbody."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    ident = f' id="{for_html(table_id)}"' if table_id else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return Safe(f"<table{ident}>{thead}<tbody {body_attrs}>{body}</tbody></table>")


def definitions(pairs: Iterable[tuple[str, object]]) -> Safe:
    """A two-column table of names and values."""
    return table(("", ""), [(k, v) for k, v in pairs])


def page(title: str, body: str, nonce: str, *, active: str = "/", token: str | None, charts: bool) -> str:
    """A whole document (module contract)."""
    nav = "".join(
        f'<a href="{href}"{" class=on" if href == active else ""}>{esc(name)}</a>' for href, name in NAV
    )
    meta = f'<meta name="tg-token" content="{for_html(token)}">' if token else ""
    plotly = f'<script nonce="{nonce}" src="/assets/plotly.js"></script>' if charts else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · tradegraph</title>{meta}<style>{STYLE}</style>{plotly}</head>"
        f"<body><header><strong>tradegraph</strong>{nav}</header><main><h1>{esc(title)}</h1>{body}</main>"
        f'<script nonce="{nonce}" src="/assets/dashboard.js"></script></body></html>'
    )
