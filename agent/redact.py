"""Masking credentials embedded in URLs: the one function every output path uses.

Contracts:
- `mask_url_credentials(text)` replaces the credentials part of every `scheme://user:password@host` in a
  text: the password becomes `***` (`http://user:***@host`); a userinfo without a colon is taken to be a
  token and masked whole (`https://***@host`). Everything else in the text is unchanged, and masking twice
  gives the same text.
- The userinfo runs from `://` to the last `@` before the host's end (`/`, `?`, `#` or whitespace), so a
  password holding a raw `@` is masked whole; an `@` in a path or query is not a credential.
- Used by `Settings.masked_dump` (`tradegraph config show`, the runs' `config` column), the LLM call log's
  `endpoint`, the daemon's log redaction and the CLI's `error:` lines.
"""

from __future__ import annotations

import re

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#@]+(?:@[^\s/?#@]+)*)@")


def mask_url_credentials(text: str) -> str:
    """`text` with the password (or token) of every URL's userinfo replaced by `***`."""
    return _USERINFO.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{match['scheme']}{shown}@"
