"""Leakage control: hide what lets a model recall history (ticker, dates, price level) in a prompt.

Models remember prices and dates from pre-training; a backtest inside their training window overstates
skill. With `llm.leakage_control = true` the context builder renders through a `Disclosure` that:
- names the symbol by an alias (`ASSET_A`), and the quote currency `QUOTE`;
- writes days as day numbers relative to a hidden reference day (day 0), hours as UTC hours of day;
- divides prices by `price_scale` (real price = prompt price × `price_scale`) and volumes by `volume_scale`.

Contracts:
- The reference is the first bar at or after the start of the current UTC calendar quarter (of bar t):
  its open is price 100 and its day is day 0. It depends only on bars <= t (point in time), and stays fixed
  for a whole quarter, so consecutive prompts keep a byte-identical prefix; it moves once a quarter.
- The volume unit is the mean base-bar volume over the 30 days up to the reference bar, so a typical bar
  of that month shows about 100.
- `Disclosure.plain(symbol)` is the identity (leakage control off): real names, dates and prices.
- `Disclosure.text` hides the symbol's names and four-digit years in free text (past rationales,
  invalidation notes) and rewrites numbers that are real prices into prompt units: a number counts as a
  real price when it is nearer (in ratio) to the reference's real price than to 100 and within 1/20..20x
  of it; for a price scale below 1 only numbers with decimals count (small integers there are periods).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

DEFAULT_ALIAS = "ASSET_A"
QUOTE_ALIAS = "QUOTE"
REFERENCE_PRICE = 100.0
VOLUME_UNIT = 100.0
_VOLUME_WINDOW = pd.Timedelta(days=30)
_KNOWN_NAMES = {
    "BTC": ("bitcoin",),
    "ETH": ("ethereum", "ether"),
    "SOL": ("solana",),
    "BNB": ("binance coin", "binance"),
    "XRP": ("ripple",),
}
_YEAR = re.compile(r"(?<![\d.])(?:19|20)\d\d(?![\d.])")
_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)([kK])?(?!\w|\.\d)")
_PRICE_BAND = 20.0


@dataclass(frozen=True)
class Disclosure:
    """How names, times and prices appear in one prompt."""

    symbol: str
    name: str
    """The symbol as the prompt names it (the alias under leakage control)."""
    quote: str
    price_scale: float = 1.0
    volume_scale: float = 1.0
    day_zero: pd.Timestamp | None = None
    """The hidden reference day; None = absolute UTC dates."""

    @classmethod
    def plain(cls, symbol: str) -> Disclosure:
        """No leakage control: real symbol, dates and prices."""
        return cls(symbol=symbol, name=symbol, quote=_quote_of(symbol))

    @property
    def anonymised(self) -> bool:
        """True when names, dates and price levels are hidden."""
        return self.day_zero is not None

    @property
    def alias(self) -> str | None:
        """The alias to report in `Prompt.alias` (None when the real symbol is shown)."""
        return self.name if self.anonymised else None

    @property
    def key(self) -> tuple[object, ...]:
        """What rendered text depends on (for content-addressed caches)."""
        return (self.name, self.price_scale, self.volume_scale, self.day_zero)

    def price(self, real: float) -> float:
        """A real price in prompt units."""
        return real / self.price_scale

    def day_label(self, day: pd.Timestamp) -> str:
        """`2025-09-18` in plain mode; `day +5` / `day -12` relative to day zero when anonymised."""
        if self.day_zero is None:
            return day.strftime("%Y-%m-%d")
        return f"day {self.day_number(day):+d}"

    def day_number(self, day: pd.Timestamp) -> int:
        """Whole days from the reference day to `day` (anonymised mode only)."""
        assert self.day_zero is not None
        return int((day.floor("D") - self.day_zero) // pd.Timedelta(days=1))

    def moment(self, ts: pd.Timestamp) -> str:
        """A bar time: `2025-09-18 13:00 UTC`, or `day -1 13:00` when anonymised."""
        return f"{self.day_label(ts.floor('D'))} {ts.strftime('%H:%M')}" + ("" if self.anonymised else " UTC")

    def text(self, free_text: str) -> str:
        """Free text with names (and years) hidden when anonymised."""
        if not self.anonymised:
            return free_text
        return _rebase_numbers(scrub(free_text, self.symbol, self.name), self.price_scale)


def anonymise(symbol: str, candles: pd.DataFrame, alias: str = DEFAULT_ALIAS) -> Disclosure:
    """The leakage-control disclosure for `symbol` at the last bar of `candles` (reads only bars <= t)."""
    t = candles.index[-1]
    after = int(candles.index.searchsorted(_quarter(t), side="left"))
    reference = min(after, len(candles) - 1)
    ref_ts = candles.index[reference]
    window = candles.loc[ref_ts - _VOLUME_WINDOW : ref_ts, "volume"]
    mean_volume = float(window.mean()) if len(window) else 0.0
    return Disclosure(
        symbol=symbol,
        name=alias,
        quote=QUOTE_ALIAS,
        price_scale=float(candles["open"].iloc[reference]) / REFERENCE_PRICE,
        volume_scale=mean_volume / VOLUME_UNIT if mean_volume > 0 else 1.0,
        day_zero=ref_ts.floor("D"),
    )


def scrub(text: str, symbol: str, alias: str) -> str:
    """Replace the symbol, its base and quote names and four-digit years in `text`."""
    base, quote = symbol.split("/")[0], _quote_of(symbol)
    names = [(symbol, alias), *((n, alias) for n in _KNOWN_NAMES.get(base.upper(), ())), (base, alias)]
    for name, replacement in [*names, (quote, QUOTE_ALIAS)]:
        if name:
            text = re.sub(re.escape(name), replacement, text, flags=re.IGNORECASE)
    return _YEAR.sub("[year]", text)


def _rebase_numbers(text: str, price_scale: float) -> str:
    """Numbers nearer the real price level than the prompt's (100), rewritten in prompt units."""
    real_level = REFERENCE_PRICE * price_scale

    def rewrite(match: re.Match[str]) -> str:
        digits = match.group(1).replace(",", "")
        real = float(digits) * (1000.0 if match.group(2) else 1.0)
        if real <= 0 or (price_scale < 1 and "." not in digits):  # small assets: integers are periods
            return match.group(0)
        nearer_real = abs(math.log(real / real_level)) < abs(math.log(real / REFERENCE_PRICE))
        in_band = 1 / _PRICE_BAND <= real / real_level <= _PRICE_BAND
        return f"{real / price_scale:.5g}" if nearer_real and in_band else match.group(0)

    return _NUMBER.sub(rewrite, text)


def _quote_of(symbol: str) -> str:
    return symbol.split("/")[1].split(":")[0] if "/" in symbol else ""


def _quarter(ts: pd.Timestamp) -> pd.Timestamp:
    month = 3 * ((ts.month - 1) // 3) + 1
    return pd.Timestamp(year=ts.year, month=month, day=1, tz=ts.tz)
