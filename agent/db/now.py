"""The database's clock, as an SQL expression: `db_now_ms()` is the server's now in ms since the epoch (UTC).

Contracts:
- Times that processes on different hosts compare (the lease's heartbeat, its acquisition and release,
  and the staleness test in the claim's WHERE clause) are written and judged with this one clock, inside
  the statement that uses them, never with a host's wall clock: a host whose clock is off can neither take
  a live lease nor make its own heartbeat look older or younger than it is.
- SQLite: `julianday('now')` (millisecond resolution, constant within a statement). PostgreSQL:
  `statement_timestamp()` (the start of the current statement, not of the transaction, so a statement that
  waited on a row lock judges staleness with the time it actually ran). Other backends fail to compile.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_MS_PER_DAY = 86_400_000


class db_now_ms(FunctionElement[int]):  # noqa: N801 - an SQL function, named like one
    """The database server's current time in milliseconds since the epoch (an SQL expression)."""

    type = BigInteger()
    inherit_cache = True
    name = "db_now_ms"


@compiles(db_now_ms, "sqlite")
def _sqlite_now(_element: db_now_ms, _compiler: Any, **_kw: Any) -> str:
    return f"CAST((julianday('now') - {_UNIX_EPOCH_JULIAN_DAY}) * {_MS_PER_DAY}.0 AS INTEGER)"


@compiles(db_now_ms, "postgresql")
def _postgresql_now(_element: db_now_ms, _compiler: Any, **_kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)"


@compiles(db_now_ms)
def _unsupported(_element: db_now_ms, compiler: Any, **_kw: Any) -> str:
    raise CompileError(f"db_now_ms() has no implementation for {compiler.dialect.name}")
