"""The analytics tools and the agents that use them: typed, read-only functions over market data,
statistics, indicators, backtests (not recorded) and the ledger (`tools.TOOLS`), used by `tradegraph ask`,
`tradegraph mcp` and notebooks alike.

    models       the tool input base, `ToolError`, shared validators
    context      `ToolContext`: settings and a read-only database
    market_data  candles, returns, stored data
    statistics   volatility, drawdown, correlation, rolling windows (definitions stated)
    regimes      trend / range / high-vol labels (definitions stated)
    indicators   TA-Lib indicators, point in time
    backtests    a backtest or a small sweep through the backtest service, not recorded
    runs         recorded runs listed and compared
    ledger       a run's trades, decisions and LLM calls
    explain      one decision: prompt, answer, clamps, orders, aftermath
    charts       PNG and offline HTML charts through `agent.backtest.charts`
    tools        the registry: names, schemas, `call` with validation
    chat, limits, ask_graph, ask   the `ask` agent: model seam, bounds and trace, LangGraph graph, entry
    mcp_server   the same tools over the Model Context Protocol
"""

from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError
from agent.analytics.tools import TOOLS, call, openai_tools

__all__ = ["TOOLS", "ToolContext", "ToolError", "call", "openai_tools"]
