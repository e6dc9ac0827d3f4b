"""Assembles an `AgentRunner` from settings: the one place where the parts are chosen and wired.

The backtest command, the daemon, `tradegraph tick`, the demo and notebooks all call `open_agent`; they
differ only in the candle source they pass (or let it load) and in which bars they feed to `tick`.

Contracts:
- Rule strategies need no LLM: no endpoint is resolved, no model started.
- `llm` and `hybrid` resolve the endpoint (`agent.llm.local_server.resolve_endpoint`: the configured one, or
  the embedded llama.cpp server started here and stopped on exit), discover its model and context length,
  and size the prompt budget from it.
- `hybrid` and `fallback = "rule"` use `settings.fallback_strategy` as the rule strategy.
- `trading_rules` from a live exchange go through the retry policy (`agent.market.retry.call`): a ccxt
  fault (unreachable exchange, a symbol it does not list) leaves as a one-line `ExchangeError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.db.session import open_db
from agent.errors import StrategyError
from agent.graph.mode import StrategyKind, StrategyMode
from agent.graph.runner import AgentRunner, open_runner, replay_rules
from agent.market.exchange import MarketRules
from agent.market.source import CandleSource, FrameSource
from agent.market.store import load_candles


def load_source(settings: Settings, symbols: list[str] | None = None) -> FrameSource:
    """Candles for the configured symbols (downloaded store first, then the bundled sample)."""
    exchange = "binance" if settings.exchange.id == "replay" else settings.exchange.id
    symbols = symbols or settings.symbols

    def loader(symbol: str) -> Any:
        return load_candles(symbol, settings.timeframe, settings.data_dir, exchange=exchange)

    return FrameSource({s: loader(s) for s in symbols}, loader=loader)


def trading_rules(settings: Settings) -> dict[str, MarketRules]:
    """Per-symbol trading rules: Binance spot's for replay, else from the exchange's `load_markets`."""
    if settings.exchange.id == "replay":
        return replay_rules(settings, settings.symbols)
    from agent.market.exchange import make_exchange, market_rules
    from agent.market.retry import RetryPolicy, call

    exchange = make_exchange(settings)
    policy, name = RetryPolicy.from_settings(settings.exchange), settings.exchange.id
    try:  # through `call`: a ccxt fault (unreachable, unknown symbol) leaves as a one-line tradegraph error
        call(policy, f"{name} load_markets", exchange.load_markets)
        return {
            s: market_rules(
                call(policy, f"{name} market {s}", exchange.market, s),
                taker_fee=settings.broker.taker_fee,
                maker_fee=settings.broker.maker_fee,
            )
            for s in settings.symbols
        }
    finally:
        close = getattr(exchange, "close", None)
        if callable(close):
            close()


def rule_strategy(settings: Settings, strategy: str, params: dict[str, Any] | None = None) -> Any:
    """The rule strategy a run uses: itself, or the fallback strategy for llm/hybrid runs."""
    from strategies import build_strategy

    mode = StrategyMode.of(strategy)
    name = settings.fallback_strategy if mode.asks_model else strategy
    needs_rule = mode.kind is not StrategyKind.LLM or settings.fallback == "rule"
    if not needs_rule:
        return None
    try:
        return build_strategy(name, None if mode.asks_model else params)
    except StrategyError:
        raise
    except Exception as e:  # noqa: BLE001 - a user's strategy file can fail in any way
        raise StrategyError(f"cannot load strategy {name!r}: {e}") from None


@contextmanager
def open_agent(
    settings: Settings,
    *,
    run_id: str,
    kind: str,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    source: CandleSource | None = None,
    factory: sessionmaker[Session] | None = None,
    checkpoint: bool = True,
    start_ts: int | None = None,
    end_ts: int | None = None,
) -> Iterator[AgentRunner]:
    """A ready runner for `run_id` (created or resumed); every resource is released on exit."""
    strategy = strategy or settings.strategy
    with ExitStack() as stack:
        if factory is None:
            engine, factory = open_db(settings.db_url)
            stack.callback(engine.dispose)
        rule = rule_strategy(settings, strategy, params)
        gateway = builder = None
        budget = None
        if StrategyMode.of(strategy).asks_model:
            gateway, builder, budget = _llm_parts(settings, factory, stack)
        yield stack.enter_context(
            open_runner(
                settings,
                run_id=run_id,
                kind=kind,
                strategy=strategy,
                source=source if source is not None else load_source(settings),
                rules=trading_rules(settings),
                gateway=gateway,
                builder=builder,
                budget_tokens=budget,
                rule=rule,
                checkpoint=checkpoint,
                params=params,
                start_ts=start_ts,
                end_ts=end_ts,
                factory=factory,
            )
        )


def _llm_parts(settings: Settings, factory: sessionmaker[Session], stack: ExitStack) -> tuple[Any, Any, Any]:
    from agent.llm.cache import CallStore
    from agent.llm.context import MarketContextBuilder, budget_from_settings
    from agent.llm.discovery import discover
    from agent.llm.gateway import LLMGateway
    from agent.llm.local_server import resolve_endpoint
    from agent.llm.tokens import counter_for_settings

    base_url = stack.enter_context(resolve_endpoint(settings))
    info = discover(base_url, settings.llm)
    llm = settings.llm if settings.llm.model else settings.llm.model_copy(update={"model": info.model})
    gateway = LLMGateway(llm, base_url, store=CallStore(factory))
    builder = MarketContextBuilder.from_settings(
        settings, counter=counter_for_settings(settings), max_model_len=info.max_model_len
    )
    return gateway, builder, budget_from_settings(settings, info.max_model_len)
