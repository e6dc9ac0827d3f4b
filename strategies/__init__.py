"""Built-in and user strategies: point-in-time OHLCV in, target exposure out."""
