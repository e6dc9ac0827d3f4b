"""Keeping notification URLs out of logs: their secret parts, and text with them masked.

Apprise URLs carry their credentials anywhere: `tgram://BOT_TOKEN/CHAT_ID`, `slack://T/B/TOKEN`,
`mailto://user:password@host`, `json://user:pass@host/path?token=...`.

Contracts:
- `url_secrets(url)` lists what must never be printed of one URL: the URL itself, and every piece of it
  between separators (`/ : @ ? & = #`) after the scheme that is at least `MIN_SECRET` characters long and
  not a host name or address (only letters, digits, dots and dashes with at least one dot). Longest
  first, so a piece inside another is masked after it.
- `masked(text, secrets)` replaces each secret in `text` by `***`; `show_url(url)` is a URL as it may be
  shown: `scheme://***`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
MIN_SECRET = 8
_PIECES = re.compile(r"[/:@?&=#]+")
_HOST = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def url_secrets(url: str) -> list[str]:
    """The URL and its token-like pieces (see the module contract)."""
    _, sep, rest = url.partition("://")
    pieces = _PIECES.split(rest if sep else url)
    found = {url} | {p for p in pieces if len(p) >= MIN_SECRET and not _HOST.match(p)}
    return sorted((s for s in found if s), key=len, reverse=True)


def masked(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `***`."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def show_url(url: str) -> str:
    """`scheme://***`: which service, nothing of its address or tokens."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://{MASK}" if sep and scheme.isidentifier() else MASK
