"""The decision request stream: stateless prompts for the bars ahead, in flight while earlier bars settle.

In the `stateless` prompt mode (`llm.prompt_mode`) a prompt depends only on the market up to its bar: no
account, positions, allowance or past outcomes. So an agent backtest, which knows its bars in advance, can
send the requests for bars t+1 … t+W while bar t is settled. Settling stays strictly in bar order, on the
same graph: the analyse node takes bar t's answers from the stream instead of asking the gateway itself.

Contracts:
- `answers(t, symbols)` returns one `Analysis` per symbol for bar t. It first submits every bar up to
  `window` bars after t (all the run's symbols, one `decide_many` batch per bar; the gateway keeps at most
  `llm.concurrency` requests in flight), then waits for bar t's batch only. A bar that is not in the plan is
  asked on the spot. Bars before t are forgotten (their answers, cached in `llm_calls`, are not used).
- An answer is keyed by (symbol, bar) and its prompt does not depend on anything settled, so the ledger does
  not depend on the window, the concurrency, or the order in which answers arrive; with `window=0` the
  stream asks bar by bar, exactly as the graph does without it.
- What cannot be used is not asked where that is known before the bar settles: `ahead(symbol, t)` False
  (e.g. the symbol has no bar at t, so the graph skips it) leaves the symbol out of bar t's batch; if bar t
  wants it after all, it is asked on the spot. What depends on the book (the risk layer's allowance leaves
  only HOLD) is not known ahead: such answers are requested and then not used. `stats().unused` counts
  every answer requested and not used (a symbol the bar did not want, a bar never settled, a request
  still running at `close`), so a run reports the calls it made, not only the decisions it used.
- A prompt that cannot be built (budget, tokenizer) is an abstained `Analysis` from `prepare`, never sent.
  The gateway's `LLMUnavailable` is raised again by `answers` for the bar it failed on.
- Prompts are built in the caller's thread (the GIL would make another thread no faster); HTTP runs on the
  gateway's own event loop. `stats()` reads how many requests are in flight and how many were sent.

In the `stateful` mode a prompt depends on the book, so only one bar is asked at a time: `ask_bar` sends each
of its requests as soon as its prompt is built (the first is at the server while the next is built), then
runs `while_waiting` (the analyse node prepares the next bar's market part there) and only then waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from agent.llm.schema import Analysis, DecisionRequest, DecisionResult

log = logging.getLogger(__name__)

Prepared = tuple[DecisionRequest, float, str | None] | Analysis
"""A request with its prompt's mapping back (price scale, alias), or the abstained answer of a prompt that
could not be built."""


@dataclass
class _Batch:
    """One bar's requests in flight, and the answers known without asking."""

    future: Future[list[DecisionResult]] | None
    asked: list[tuple[str, float, str | None]]
    """Per request, in order: the real symbol and its prompt's mapping back (price scale, alias); under
    leakage control every request names the same alias, so answers are matched by position."""
    unasked: dict[str, Analysis]
    left_out: frozenset[str] = frozenset()
    """Symbols not asked ahead (`ahead` said they cannot be used at this bar)."""

    @property
    def size(self) -> int:
        """Requests sent for this bar."""
        return len(self.asked)


@dataclass(frozen=True)
class StreamStats:
    """What the stream is doing: requests in flight now, requests sent, bars submitted ahead, and answers
    requested that no settled bar used."""

    in_flight: int
    sent: int
    ahead: int
    unused: int = 0


@dataclass
class DecisionStream:
    """Stateless decisions for the bars of one run, requested ahead (see the module contract)."""

    times: Sequence[int]
    """The run's bars, in the order they are settled."""
    symbols: Sequence[str]
    prepare: Callable[[str, int], Prepared]
    """The stateless request for (symbol, bar): the same function the analyse node uses without a stream."""
    submit: Callable[[Sequence[DecisionRequest]], Future[list[DecisionResult]]]
    window: int
    """How many bars after the one being settled are kept submitted."""
    ahead: Callable[[str, int], bool] | None = None
    """Whether (symbol, bar) can be used, as far as is known before the bar settles (None: always)."""
    _index: dict[int, int] = field(default_factory=dict, init=False)
    _next: int = field(default=0, init=False)
    _batches: dict[int, _Batch] = field(default_factory=dict, init=False)
    _sent: int = field(default=0, init=False)
    _unused: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ValueError(f"window must be >= 0, not {self.window}")
        self._index = {t: i for i, t in enumerate(self.times)}

    def answers(self, t: int, symbols: Sequence[str]) -> dict[str, Analysis]:
        """Bar t's answer per symbol in `symbols` (see the module contract)."""
        i = self._index.get(t)
        if i is None:  # not planned: ask now, on its own
            batch = self._submit(t, self.symbols)
        else:
            self._forget_before(t)
            self._fill(i + self.window)
            batch = self._batches.pop(t)
        late = [s for s in symbols if s in batch.left_out]
        extra = self._submit(t, late) if late else None  # wanted after all: asked now
        self._unused += sum(s not in symbols for s, _, _ in batch.asked)
        out = _collect(batch) | (_collect(extra) if extra is not None else {})
        return {s: out[s] for s in symbols if s in out}

    def stats(self) -> StreamStats:
        """Requests in flight, requests sent so far, bars submitted ahead."""
        in_flight = sum(
            b.size for b in self._batches.values() if b.future is not None and not b.future.done()
        )
        return StreamStats(in_flight, self._sent, len(self._batches), self._unused)

    def close(self) -> None:
        """Cancel what has not started (answers already on the way still land in the cache, unused)."""
        for batch in self._batches.values():
            if batch.future is not None and not batch.future.cancel():
                self._unused += batch.size
        self._batches.clear()

    def _fill(self, last: int) -> None:
        last = min(last, len(self.times) - 1)
        while self._next <= last:
            t = self.times[self._next]
            usable = [s for s in self.symbols if self.ahead is None or self.ahead(s, t)]
            batch = self._submit(t, usable)
            self._batches[t] = _Batch(
                batch.future, batch.asked, batch.unasked, frozenset(self.symbols) - set(usable)
            )
            self._next += 1

    def _forget_before(self, t: int) -> None:
        for old in [b for b in self._batches if b < t]:
            self._unused += self._batches.pop(old).size  # a bar never settled: its answers go unused
        self._next = max(self._next, self._index[t])

    def _submit(self, t: int, symbols: Sequence[str]) -> _Batch:
        requests: list[DecisionRequest] = []
        asked: list[tuple[str, float, str | None]] = []
        unasked: dict[str, Analysis] = {}
        for symbol in symbols:
            prepared = self.prepare(symbol, t)
            if isinstance(prepared, Analysis):
                unasked[symbol] = prepared
                continue
            request, price_scale, alias = prepared
            requests.append(request)
            asked.append((symbol, price_scale, alias))
        future = self.submit(requests) if requests else None
        self._sent += len(requests)
        return _Batch(future, asked, unasked)


def _collect(batch: _Batch) -> dict[str, Analysis]:
    """A batch's answers per real symbol (waiting for them), with the answers known without asking."""
    results = batch.future.result() if batch.future is not None else []
    out = {
        s: Analysis.of(res, scale, alias) for (s, scale, alias), res in zip(batch.asked, results, strict=True)
    }
    return out | batch.unasked


def ask_bar(
    symbols: Sequence[str],
    prepare: Callable[[str], Prepared],
    submit: Callable[[Sequence[DecisionRequest]], Future[list[DecisionResult]]],
    while_waiting: Callable[[], object],
) -> dict[str, Analysis]:
    """One bar's answer per symbol, in `symbols` order: each request submitted as soon as `prepare` built it,
    then `while_waiting()` (best effort: an exception there is logged and ignored, it must not cost the bar),
    then the answers awaited. Answers are matched by position, so they do not depend on arrival order; a
    prompt that could not be built is its abstained `Analysis`, never sent; the gateway's `LLMUnavailable`
    is raised for the bar."""
    sent: dict[str, tuple[Future[list[DecisionResult]], float, str | None]] = {}
    unasked: dict[str, Analysis] = {}
    for symbol in symbols:
        prepared = prepare(symbol)
        if isinstance(prepared, Analysis):
            unasked[symbol] = prepared
            continue
        request, price_scale, alias = prepared
        sent[symbol] = (submit([request]), price_scale, alias)
    try:
        while_waiting()
    except Exception:  # noqa: BLE001 - preparing ahead is an optimisation: the bar's answers come first
        log.debug("preparing the next bar failed; its prompts are built when it comes", exc_info=True)
    out = {s: Analysis.of(f.result()[0], scale, alias) for s, (f, scale, alias) in sent.items()}
    return {s: out[s] if s in out else unasked[s] for s in symbols}
