"""Order execution primitives shared by the backtest engine and the paper broker."""
