"""Market data: ccxt access with retries, the candle store, validation and the offline replay exchange."""
