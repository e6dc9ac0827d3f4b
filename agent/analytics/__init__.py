"""The analytics tools and the agents that use them: typed, read-only functions over market data,
statistics, indicators, backtests (not recorded) and the ledger (`tools.TOOLS`), used by `tradegraph ask`,
`tradegraph mcp` and notebooks alike.

    models       the tool input base, `ToolError`, shared validators
    context      `ToolContext`: settings and a read-only database
    market_data  candles, returns, stored data
    statistics   volatility, drawdown, correlation, rolling windows, regimes (definitions stated)
    indicators   TA-Lib indicators, point in time
    backtests    a backtest or a small sweep through the backtest service, not recorded
    ledger       runs, figures, trades, decisions
    explain      one decision: prompt, answer, clamps, orders, aftermath
    tools        the registry: names, schemas, `call` with validation
"""

from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError
from agent.analytics.tools import TOOLS, call, openai_tools

__all__ = ["TOOLS", "ToolContext", "ToolError", "call", "openai_tools"]
