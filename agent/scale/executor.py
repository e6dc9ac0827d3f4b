"""The executor seam: many independent tasks (sweep trials, campaign cells) on the local process pool or on a
Ray cluster, with the same results either way.

Role: `tradegraph sweep` and `tradegraph eval` hand a task function, the data every task shares and the
items to `Executor.run`; where the tasks run is configuration (`[scale]`, `--executor`, `--ray-address`).

Contracts:
- A task is a module-level function `fn(shared, item) -> result`, pure given its inputs, so the result does
  not depend on the worker, the order of completion or a retry. `run` returns the results in item order and
  calls `on_done(index, result)` as each finishes (progress).
- `LocalExecutor` (the default, nothing to install): `workers` processes (`None`: every core) that receive
  `shared` once (pool initializer); with one worker, or one item, the tasks run in this process.
- `RayExecutor` (the `ray` extra): connects to `address` (`auto`: a running cluster, else a local instance
  started here with `workers` CPUs; `ray://host:10001`: a remote cluster through Ray Client); `shared` goes
  into the object store once and every task reads it from there; a task whose worker dies is retried (up to
  `max_retries`), and each item's result is taken once. A task's own exception is not retried: it is raised
  here, as with the local pool.
- `check_ledger`: with workers on other nodes a SQLite ledger cannot be shared, so Ray with SQLite is refused
  (`ConfigError`, one line) unless every node of the cluster is this machine.
- `make_executor(kind, workers, address)` builds one from the `[scale]` settings or the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Literal, Protocol, TypeVar

from agent.errors import ConfigError

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")

ExecutorKind = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("local", "ray")


class Executor(Protocol):
    """Runs `fn(shared, item)` for every item (module contract)."""

    kind: ExecutorKind
    workers: int

    def run(
        self,
        fn: Callable[[S, I], R],
        shared: S,
        items: Sequence[I],
        on_done: Callable[[int, R], None] | None = None,
        parallel: int | None = None,
    ) -> list[R]: ...

    def nodes(self) -> list[str]:
        """The addresses of the nodes tasks may run on."""
        ...

    def local_only(self) -> bool:
        """True when every node tasks may run on is this machine."""
        ...


_SHARED: dict[str, Any] = {}


def _set_shared(value: Any) -> None:
    _SHARED["value"] = value


def _call_shared(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_SHARED["value"], item)


class LocalExecutor:
    """Processes on this machine (module contract)."""

    kind: ExecutorKind = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def nodes(self) -> list[str]:
        """This machine only."""
        return ["local"]

    def local_only(self) -> bool:
        """Always: the pool is on this machine."""
        return True

    def run(
        self,
        fn: Callable[[S, I], R],
        shared: S,
        items: Sequence[I],
        on_done: Callable[[int, R], None] | None = None,
        parallel: int | None = None,
    ) -> list[R]:
        """Every item's result, in item order; at most `parallel` (default: every worker) at once."""
        out: list[Any] = [None] * len(items)
        workers = min(self.workers, parallel or self.workers, len(items) or 1)
        if workers == 1:
            for i, item in enumerate(items):
                out[i] = fn(shared, item)
                if on_done is not None:
                    on_done(i, out[i])
            return out
        with ProcessPoolExecutor(max_workers=workers, initializer=_set_shared, initargs=(shared,)) as pool:
            futures = {pool.submit(_call_shared, fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                i = futures[future]
                out[i] = future.result()
                if on_done is not None:
                    on_done(i, out[i])
        return out


class RayExecutor:
    """Tasks on a Ray cluster (module contract)."""

    kind: ExecutorKind = "ray"

    def __init__(self, address: str = "auto", workers: int | None = None, max_retries: int = 3) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs the ray extra: pip install 'tradegraph[ray]'") from None
        self._ray: Any = ray
        self._shared: Any = None
        self._ref: Any = None
        self.max_retries = max_retries
        if not ray.is_initialized():
            if address == "auto" and not _cluster_running(ray):
                ray.init(
                    num_cpus=workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                try:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
                except (ConnectionError, RuntimeError, ValueError) as e:
                    raise ConfigError(f"cannot reach the Ray cluster at {address}: {e}") from None
        self.workers = max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def nodes(self) -> list[str]:
        """The alive nodes' addresses."""
        return sorted({str(n["NodeManagerAddress"]) for n in self._ray.nodes() if n.get("Alive")})

    def local_only(self) -> bool:
        """True when every alive node is this machine."""
        here = self._ray.util.get_node_ip_address()
        return all(node == here for node in self.nodes())

    def run(
        self,
        fn: Callable[[S, I], R],
        shared: S,
        items: Sequence[I],
        on_done: Callable[[int, R], None] | None = None,
        parallel: int | None = None,
    ) -> list[R]:
        """Every item's result, in item order; tasks of dead workers are retried; at most `parallel`
        (default: no limit beyond the cluster's CPUs) in flight."""
        ray = self._ray
        if not items:
            return []
        if (
            self._shared is not shared
        ):  # once per shared object, however many runs use it (a search's batches)
            self._shared, self._ref = shared, ray.put(shared)
        ref = self._ref
        remote = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_ray_task)
        out: list[Any] = [None] * len(items)
        queue = list(enumerate(items))
        pending: dict[Any, int] = {}
        limit = parallel or len(items)
        while queue or pending:
            while queue and len(pending) < limit:
                i, item = queue.pop(0)
                pending[remote.remote(fn, ref, item)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for future in done:
                i = pending.pop(future)
                out[i] = ray.get(future)
                if on_done is not None:
                    on_done(i, out[i])
        return out


def _ray_task(fn: Callable[[Any, Any], Any], shared: Any, item: Any) -> Any:
    return fn(shared, item)


def _cluster_running(ray: Any) -> bool:
    """True when `ray start` left a cluster address for `auto` to join."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto") is not None
    except Exception:  # noqa: BLE001 - no running cluster (or a Ray without this helper): start one here
        return False


def make_executor(kind: str, workers: int | None = None, address: str = "auto") -> Executor:
    """The executor named `kind` (`local` or `ray`); anything else is a `ConfigError`."""
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, workers)
    raise ConfigError(f"--executor {kind!r}: use {' or '.join(EXECUTORS)}")


def check_ledger(executor: Executor, db_url: str, nodes_here: Callable[[], bool] | None = None) -> None:
    """Refuse a SQLite ledger shared by workers on other nodes (module contract). `nodes_here` overrides
    the executor's answer to "is every node this machine?" (tests)."""
    if executor.kind != "ray" or not db_url.startswith("sqlite"):
        return
    local = nodes_here() if nodes_here is not None else executor.local_only()
    if not local:
        raise ConfigError(
            "a SQLite ledger cannot be shared by Ray workers on other nodes: set database_url to PostgreSQL "
            "(e.g. postgresql+psycopg://user@host/db), or run every worker on this machine"
        )
