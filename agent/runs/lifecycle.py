"""The run lifecycle: the kinds of run, their statuses, their ids, and the only writes of a `runs` row
(create, update metrics, finish, fail). Every mode (compiled backtest, sweep, agent backtest, demo, paper
tick, daemon, notebook) goes through here.

Contracts:
- Kinds (`RunKind`, stored in `runs.kind`; defined in the leaf module `agent.runs.kinds`, re-exported
  here): `backtest` (a compiled rule backtest), `sweep` (one trial of a parameter sweep; the sweep itself
  has no row), `agent_backtest` (the agent graph over history: `tradegraph backtest --strategy
  llm|hybrid`, `tg.run_agent`), `demo` (`tradegraph demo`, an agent backtest), `paper` (`tradegraph
  tick`), `daemon` (`tradegraph run`, live or replay), `notebook` (`tg.ask_model`, one decision).
- Statuses (`RunStatus`): a run is created `running`, then becomes `done` (`finish_run`) or `failed`
  (`fail_run`). A daemon or paper run stays `running` between ticks and across restarts.
- Run ids follow ONE grammar, `RUN_ID`: 1 to 32 of `[A-Za-z0-9_.-]` (the column is 32 characters), read as
  `<prefix>-<body>`. Ids are made in one of two ways:
  - fresh, `new_run_id(kind)`: `<prefix>-<YYYYmmdd-HHMMSS>-<6 hex>` (creation time in UTC, then random):
    ids of one kind sort by creation time. Prefixes: `bt`, `sw`, `agent`, `demo`, `paper`, `daemon`, `ask`.
    A sweep's trials are `<sweep id>-<NNNN>` (`trial_run_id`), numbered by rank (`-0001` is the best);
    `sweep_of` gives a trial's sweep id back.
  - stable, `stable_run_id(prefix, name, key)`: `<prefix>-<name>-<10 hex>`, the hex being SHA-256 of the
    JSON of `key` (keys sorted). The same key gives the same id, so a restarted daemon, or the same replay
    again, continues its run (`agent.daemon.plan.default_run_id`: prefix = feed, key = what defines the
    run). Without a key, `<prefix>-<name>` is the id when it obeys the grammar (`paper_run_id`:
    `tradegraph tick`'s `paper-<strategy>-<timeframe>`); otherwise the name is cut to what fits, unusable
    characters dropped, and the hex of the whole name appended, so different names still give different ids.
- `create_run` validates the id (`ConfigError`, one line) and is idempotent: an existing row is left as
  it is (a resumed run) and False is returned. `record_done` writes finished runs (sweep trials) with
  their metrics in one transaction.
- `update_metrics` stores the metrics of a run in progress (a daemon's, after its wake-ups) and leaves its
  status alone. Metrics are the stored form of `agent.runs.metrics.RunMetrics` (`to_json`).
- `finish_run` marks a run `done` with its metrics and report path; `fail_run` marks it `failed` with the
  error on one line (whitespace collapsed, at most `MAX_ERROR` characters) passed through
  `agent.textsafe.for_storage`, so an error quoting model text (NUL, lone surrogates) is still stored; a
  missing run is ignored (it is called while another error propagates).
- JSON columns (params, config, metrics, symbols) hold plain data only: NaN and infinities become null
  (PostgreSQL's JSON has no NaN), numpy scalars become Python numbers (`json_safe`).
- Each write is one transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Run, utcnow
from agent.db.session import transaction
from agent.errors import ConfigError
from agent.redact import mask_url_credentials
from agent.runs.kinds import RunKind as RunKind
from agent.runs.kinds import RunStatus as RunStatus
from agent.textsafe import for_storage

RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
"""The grammar of every run id."""
MAX_RUN_ID = 32
MAX_ERROR = 2000
"""Longest error stored on a failed run."""
_DIGEST = 10
_UNUSABLE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class RunSpec:
    """What a run is, as recorded when it starts."""

    id: str
    kind: RunKind
    strategy: str
    symbols: Sequence[str]
    timeframe: str
    params: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    start_ts: int | None = None
    end_ts: int | None = None


# ---- ids --------------------------------------------------------------------------------------------------


def check_run_id(run_id: str, what: str = "run id") -> str:
    """`run_id` if it obeys `RUN_ID`, else `ConfigError` naming `what` (e.g. `--run-id`)."""
    if not RUN_ID.match(run_id):
        raise ConfigError(f"invalid {what} {run_id!r}: use 1 to 32 letters, digits, '-', '_' or '.'")
    return run_id


def new_run_id(kind: RunKind | str, now: datetime | None = None) -> str:
    """A fresh id, `<prefix>-<YYYYmmdd-HHMMSS>-<6 hex>`, sortable by creation time within a kind."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{RunKind(kind).prefix}-{at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def trial_run_id(sweep_id: str, number: int) -> str:
    """The id of a sweep's trial `number` (1-based): `<sweep id>-<NNNN>`."""
    return check_run_id(f"{sweep_id}-{number:04d}")


def sweep_of(run_id: str) -> str:
    """The sweep id of a sweep trial's run id (`trial_run_id`'s inverse)."""
    return run_id.rsplit("-", 1)[0]


def stable_run_id(prefix: str, name: str, key: Any = None) -> str:
    """The same id for the same (prefix, name, key): see the module contract."""
    if key is None and RUN_ID.match(f"{prefix}-{name}"):
        return f"{prefix}-{name}"
    source = name if key is None else json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:_DIGEST]
    room = MAX_RUN_ID - len(prefix) - _DIGEST - 2
    cut = _UNUSABLE.sub("", name)[: max(room, 0)]
    return check_run_id(f"{prefix}-{cut}-{digest}" if cut else f"{prefix}-{digest}")


def paper_run_id(strategy: str, timeframe: str) -> str:
    """`tradegraph tick`'s run: one per strategy and timeframe, so every tick advances the same paper run."""
    return stable_run_id(RunKind.PAPER.prefix, f"{strategy}-{timeframe}")


# ---- writes -----------------------------------------------------------------------------------------------


def create_run(factory: sessionmaker[Session], spec: RunSpec) -> bool:
    """Insert `spec` as a running run unless its id exists; True when it was created."""
    row = _row(spec)
    with transaction(factory) as session:
        if session.get(Run, spec.id) is not None:
            return False
        session.add(row)
        return True


def record_done(
    factory: sessionmaker[Session],
    runs: Iterable[tuple[RunSpec, Mapping[str, Any]]],
    report_paths: Mapping[str, str] | None = None,
) -> None:
    """Insert finished runs (e.g. a sweep's trials), each with its metrics (and report path, by run id),
    in one transaction."""
    rows = []
    now = utcnow()
    for spec, metrics in runs:
        row = _row(spec)
        row.status, row.metrics, row.finished_at = RunStatus.DONE.value, json_safe(metrics), now
        row.report_path = (report_paths or {}).get(spec.id)
        rows.append(row)
    with transaction(factory) as session:
        session.add_all(rows)


def finish_run(
    factory: sessionmaker[Session],
    run_id: str,
    metrics: Mapping[str, Any] | None = None,
    report_path: str | None = None,
) -> None:
    """Mark a run done, with its metrics and report path when given."""
    with transaction(factory) as session:
        run = session.get_one(Run, run_id)
        run.status = RunStatus.DONE.value
        if metrics is not None:
            run.metrics = json_safe(metrics)
        if report_path is not None:
            run.report_path = report_path
        run.finished_at = utcnow()


def update_metrics(factory: sessionmaker[Session], run_id: str, metrics: Mapping[str, Any]) -> None:
    """Store the metrics of a run in progress; its status and finish time stay as they are."""
    with transaction(factory) as session:
        session.get_one(Run, run_id).metrics = json_safe(metrics)


def fail_run(factory: sessionmaker[Session], run_id: str, error: str | BaseException | None) -> None:
    """Mark a run failed with its error on one line, storable whatever it quotes; a missing run is ignored."""
    with transaction(factory) as session:
        run = session.get(Run, run_id)
        if run is not None:
            run.status = RunStatus.FAILED.value
            run.error = error_line(error)
            run.finished_at = utcnow()


def error_line(error: str | BaseException | None) -> str:
    """The stored form of a run's error: `Type: message`, one line, URL credentials masked, cut, storable."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = error or ""
    flat = " ".join(mask_url_credentials(text).split()) or RunStatus.FAILED.value
    if len(flat) > MAX_ERROR:
        flat = flat[: MAX_ERROR - 3] + "..."
    return for_storage(flat)


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats replaced by None and numpy scalars made plain, recursively."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(spec: RunSpec) -> Run:
    check_run_id(spec.id)
    return Run(
        id=spec.id,
        kind=RunKind(spec.kind).value,
        strategy=spec.strategy,
        params=json_safe(spec.params),
        symbols=json_safe(list(spec.symbols)),
        timeframe=spec.timeframe,
        start_ts=spec.start_ts,
        end_ts=spec.end_ts,
        config=json_safe(spec.config),
        status=RunStatus.RUNNING.value,
        metrics={},
    )
