"""Built-in and user strategies: point-in-time OHLCV in, target exposure out.

See `strategies.base` for the contract and `strategies.registry` for loading by name or from a file.
"""

from strategies.base import Strategy, StrategyParams
from strategies.registry import BUILTINS, build_strategy, parse_params, strategy_class

__all__ = ["BUILTINS", "Strategy", "StrategyParams", "build_strategy", "parse_params", "strategy_class"]
