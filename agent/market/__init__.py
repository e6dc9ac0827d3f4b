"""Market data: ccxt access with retries, the candle store, validation and the offline replay exchange.

Modules (nothing is imported here, so `import agent.market` stays cheap):

    candles       the canonical candle frame, timeframes and their grid; read_feather / write_feather
    indicators    indicators from candle columns (atr)
    source        CandleSource / FrameSource: point-in-time candle access for the graph, daemon and reports
    protocol      ExchangeClient: the subset of ccxt's Exchange the market code calls
    exchange      make_exchange(settings) (ccxt or replay), MarketRules / market_rules
    binance_spot  Binance spot rules of the bundled symbols and Binance's REST wire format
    replay        ReplayExchange: bundled candles behind the ccxt interface, with a settable clock
    retry         RetryPolicy; ccxt exceptions -> ExchangeError / TemporaryExchangeError
    fetch         the paging rule and its sync/async drivers
    validate      duplicates, gaps with exact spans, OHLC sanity, prices > 0
    resample      longer timeframes from a shorter stored one (complete buckets only)
    store         where candles live (downloads, then the bundled sample); load_candles, validated on load
    service       MarketDataService: incremental, validated, atomic downloads
    async_fetch   many symbols concurrently through ccxt.async_support
"""
