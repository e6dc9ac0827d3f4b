"""The daemon's logs: text or one JSON object per line, to stderr and a rotating file, secrets redacted.

Contracts:
- `setup_logging(fmt, log_dir, secrets)` configures the root logger once per process: a stderr handler and
  a `RotatingFileHandler` at `<log_dir>/daemon.log` (rotated at `max_bytes`, `backups` files kept). Calling
  it again replaces the handlers it installed before.
- JSON lines carry `ts` (UTC ISO 8601), `level`, `logger`, `msg`, every `extra=` field of the call
  (`event`, `run_id`, `bar_ts`, ...) and `exc` for a traceback. Text lines (for people) show the extra
  fields as `key=value`, bar times (`*_ts` integers, epoch ms) as UTC minutes (`2025-09-19T22:00Z`).
- `SecretRedactor` is a filter on every handler: each configured secret value (exchange key, secret and
  password, LLM API key, database password, the notification URLs and their token-like parts) is
  replaced by `***` in the message, its arguments, extra fields, tracebacks and stack traces, before any
  formatter sees the record. `configured_secrets(settings)` lists them. Credentials inside any URL
  (`scheme://user:password@host`) are masked as well, configured or not (`agent.redact.mask_url_credentials`).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent.redact import mask_url_credentials

if TYPE_CHECKING:
    from agent.config import Settings

LOG_FILE = "daemon.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
MASK = "***"
PLACEHOLDER_SECRETS = frozenset({"", "EMPTY"})
"""Values that are not secrets (the LLM key's offline default)."""

QUIET = {
    "apscheduler": logging.WARNING,
    "alembic": logging.WARNING,
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,
    "httpcore": logging.WARNING,
    "openai": logging.WARNING,
    "apprise": logging.WARNING,
}
"""Third-party loggers that would otherwise log every wake-up, migration step or HTTP request (left at
`level` when `setup_logging(..., quiet=False)`, the CLI's `--verbose`)."""

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_INSTALLED = "_tradegraph_daemon"


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold (placeholders excluded)."""
    values = [
        settings.exchange.api_key,
        settings.exchange.secret,
        settings.exchange.password,
        settings.llm.api_key,
    ]
    out = [v.get_secret_value() for v in values if v is not None]
    if settings.database_url:
        from sqlalchemy.engine import make_url

        try:
            password = make_url(settings.database_url).password
        except Exception:  # noqa: BLE001 - an unparsable URL has no password we can isolate
            password = None
        if password:
            out.append(str(password))
    from agent.notify.secrets import url_secrets

    out += [piece for url in settings.notify.urls for piece in url_secrets(url.get_secret_value())]
    return sorted({s for s in out if s not in PLACEHOLDER_SECRETS}, key=len, reverse=True)


class SecretRedactor(logging.Filter):
    """Replaces configured secret values in a record (see the module contract)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        forms: set[str] = set()
        for secret in secrets:
            if secret and secret not in PLACEHOLDER_SECRETS:
                forms.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
        self.forms = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every secret form and every URL's credentials masked."""
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return mask_url_credentials(text) if "@" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the text (or break logging)
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, self._redact_value(value))
        return True

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_value(v) for v in value]
        return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (see the module contract)."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=str, ensure_ascii=False)


def utc_minute(ms: int | None) -> str:
    """Epoch milliseconds as `2025-09-19T22:00Z` (`none` for None): how text logs show bar times."""
    if ms is None:
        return "none"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _text_value(key: str, value: Any) -> Any:
    if key.endswith("_ts") and isinstance(value, int) and not isinstance(value, bool):
        return utc_minute(value)
    return value


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The standard line, then the extra fields."""
        line = super().format(record)
        extras = [
            f"{k}={_text_value(k, v)}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        ]
        if not extras:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} {' '.join(extras)}{sep}{tail}"


def setup_logging(
    fmt: str,
    log_dir: Path | None,
    secrets: Iterable[str] = (),
    *,
    level: int = logging.INFO,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
    stream: Any = None,
    quiet: bool = True,
) -> list[logging.Handler]:
    """Configure the root logger (see the module contract); returns the handlers installed."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    redactor = SecretRedactor(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / LOG_FILE, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        setattr(handler, _INSTALLED, True)
        root.addHandler(handler)
    root.setLevel(level)
    for name, floor in QUIET.items():
        logging.getLogger(name).setLevel(max(floor, level) if quiet else level)
    return handlers


class DropMessages(logging.Filter):
    """Drops records whose message contains one of `fragments` (e.g. APScheduler's skipped-run warning,
    routine in a fast replay where a wake-up outlasts the trigger interval)."""

    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record to drop."""
        text = str(record.msg)
        return not any(f in text for f in self.fragments)
