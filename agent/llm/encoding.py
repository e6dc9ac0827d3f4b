"""Compact text encoding of candles and indicators for prompts, and its decoder (pure functions).

Contracts:
- One line per bar, space-separated, columns named once in a header line; no repeated keys, no JSON.
- Prices carry at least `PRICE_DIGITS` significant digits, the number of decimals chosen per value from
  its own magnitude (93429.99 → `93430`, 3456.78 → `3456.8`, 0.523412 → `0.52341`), so a value renders the
  same whatever else is in the prompt.
- Relative columns are whole basis points (1 bp = 0.01 %): `chg` close vs previous close (signed), `hi`
  high above close and `lo` low below close (both >= 0), `e20`/`e50` close vs EMA (signed), `atr` ATR as bp
  of close. `vol` has two significant digits with k/M/B/T suffixes; `vr` is volume / its 20-period mean.
- A missing value (indicator warm-up) is written `na`.
- `decode_rows` inverts `encode_rows` up to the stated rounding (round-trip tested): close within 5e-5
  relative, high/low within 1e-4, volume within 5 %.
- `indicator_frame` adds every indicator column from TA-Lib; each value at row i uses rows <= i only.
- `encode_chunks` cuts a series into the chunks the context builder counts and caches: a chunk's text
  depends only on its own bars (and the group of the bar before), so completed chunks never change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from agent.llm.bars import Bars
from agent.llm.leakage import Disclosure
from agent.market.indicators import indicators

PRICE_DIGITS = 5
NA = "na"
_SUFFIXES = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3))

Formatter = Callable[[float], str]


# --- numbers -------------------------------------------------------------------------------------


def format_sig(x: float, digits: int = PRICE_DIGITS) -> str:
    """`x` with at least `digits` significant digits (none after the point once the integer part has them)."""
    if not math.isfinite(x):
        return NA
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{x:.{decimals}f}"
    return "0" if text in ("-0", "-0.0") else text


def format_price(x: float) -> str:
    """A price with `PRICE_DIGITS` significant digits."""
    return format_sig(x, PRICE_DIGITS)


def format_bps(ratio: float) -> str:
    """A signed ratio as whole basis points: 0.0031 → `+31`, -0.0012 → `-12`, 0 → `0`."""
    if not math.isfinite(ratio):
        return NA
    bp = round(ratio * 10_000)
    return f"{bp:+d}" if bp else "0"


def format_bps_unsigned(ratio: float) -> str:
    """A non-negative ratio as whole basis points without a sign: 0.0029 → `29`."""
    if not math.isfinite(ratio):
        return NA
    return str(max(0, round(ratio * 10_000)))


def format_volume(x: float) -> str:
    """Two significant digits with a k/M/B/T suffix: 1234.5 → `1.2k`, 85.3 → `85`, 0.853 → `0.85`."""
    if not math.isfinite(x):
        return NA
    for suffix, scale in _SUFFIXES:
        if abs(x) >= scale * 0.9995:
            return _two_sig(x / scale) + suffix
    return _two_sig(x)


def format_int(x: float) -> str:
    """A whole number (RSI)."""
    return str(round(x)) if math.isfinite(x) else NA


def format_ratio(x: float) -> str:
    """One decimal (volume ratio): 1.27 → `1.3`."""
    return f"{x:.1f}" if math.isfinite(x) else NA


def parse_number(text: str) -> float:
    """Inverse of the formatters: `na` → NaN, `1.2k` → 1200.0, `+31` → 31.0 (bp stay bp)."""
    if text == NA:
        return math.nan
    for suffix, scale in _SUFFIXES:
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _two_sig(x: float) -> str:
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if abs(float(f"{x:.{max(0, 1 - magnitude)}f}")) >= 10 ** (magnitude + 1):
        magnitude += 1  # 9.96 rounds up to 10: two digits are "10", not "10.0"
    return f"{x:.{max(0, 1 - magnitude)}f}"


# --- indicators ----------------------------------------------------------------------------------


def indicator_frame(candles: pd.DataFrame, atr_period: int = 14) -> pd.DataFrame:
    """Candles plus ema20, ema50, rsi, macd, macd_signal, macd_hist, atr and vol_mean (TA-Lib, causal)."""
    values = indicators(
        candles["high"].to_numpy(dtype=np.float64),
        candles["low"].to_numpy(dtype=np.float64),
        candles["close"].to_numpy(dtype=np.float64),
        candles["volume"].to_numpy(dtype=np.float64),
        atr_period,
    )
    return pd.concat([candles, pd.DataFrame(values, index=candles.index)], axis=1)


# --- rows ----------------------------------------------------------------------------------------

COLUMN_DOCS: dict[str, str] = {
    "close": "close price",
    "chg": "close vs previous close, bp",
    "hi": "high above close, bp",
    "lo": "low below close, bp",
    "vol": "volume (base units; k=1e3 M=1e6 B=1e9)",
    "vr": "volume / mean volume of the last 20 bars",
    "rsi": "RSI(14)",
    "e20": "close vs EMA(20), bp",
    "e50": "close vs EMA(50), bp",
    "atr": "ATR(14) as bp of close",
}
"""What each column means (the system message repeats this legend)."""


def row_values(
    frame: pd.DataFrame | Bars, columns: Sequence[str], price_scale: float, volume_scale: float
) -> np.ndarray:
    """The numbers each column shows, one row per bar (prices divided by `price_scale`)."""
    bars = frame if isinstance(frame, Bars) else Bars.of(frame)
    close = bars["close"]
    prev = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        series = {
            "close": close / price_scale,
            "chg": close / prev - 1.0,
            "hi": bars["high"] / close - 1.0,
            "lo": 1.0 - bars["low"] / close,
            "vol": bars["volume"] / volume_scale,
            "vr": bars["volume"] / bars["vol_mean"],
            "rsi": bars["rsi"],
            "e20": close / bars["ema20"] - 1.0,
            "e50": close / bars["ema50"] - 1.0,
            "atr": bars["atr"] / close,
        }
    return np.column_stack([series[c] for c in columns]) if len(bars) else np.empty((0, len(columns)))


_FORMATTERS: dict[str, Formatter] = {
    "close": format_price,
    "chg": format_bps,
    "hi": format_bps_unsigned,
    "lo": format_bps_unsigned,
    "vol": format_volume,
    "vr": format_ratio,
    "rsi": format_int,
    "e20": format_bps,
    "e50": format_bps,
    "atr": format_bps_unsigned,
}


def encode_rows(labels: Sequence[str], values: np.ndarray, columns: Sequence[str]) -> list[str]:
    """One line per bar: `label v1 v2 ...\\n`, values formatted per column."""
    formatted = [[_FORMATTERS[c](float(v)) for v in values[:, j]] for j, c in enumerate(columns)]
    return [" ".join((label, *cells)) + "\n" for label, *cells in zip(labels, *formatted, strict=True)]


def header_line(label: str, columns: Sequence[str]) -> str:
    """The line naming the columns of a block, e.g. `h close chg hi lo vol rsi`."""
    return " ".join((label, *columns)) + "\n"


def decode_rows(lines: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Parse encoded rows back into numbers: close, high, low, volume and the other columns as shown."""
    labels, cells = [], []
    for line in lines:
        parts = line.split()
        if len(parts) != len(columns) + 1:
            raise ValueError(f"expected {len(columns) + 1} fields, got {len(parts)}: {line!r}")
        labels.append(parts[0])
        cells.append([parse_number(p) for p in parts[1:]])
    out = pd.DataFrame(cells, index=labels, columns=list(columns), dtype="float64")
    if {"close", "hi", "lo"} <= set(columns):
        out["high"] = out["close"] * (1 + out["hi"] / 10_000)
        out["low"] = out["close"] * (1 - out["lo"] / 10_000)
    return out


# --- chunks: the units the context builder counts, caches and assembles ---------------------------


@dataclass(frozen=True)
class Chunks:
    """A bar series cut into chunks: one UTC day of intraday bars, or a single daily/weekly bar."""

    starts: np.ndarray
    """Chunk start (ns since epoch): the day for intraday bars, the bar's open time otherwise."""
    texts: tuple[str, ...]
    rows: np.ndarray
    leads: tuple[str, ...]
    """The group line (`# 2025-09`) a block must add when it starts at chunk i, which lacks one."""


def encode_chunks(
    frame: pd.DataFrame | Bars, kind: str, columns: tuple[str, ...], disc: Disclosure, *, memo: bool = True
) -> Chunks:
    """Encode `frame` (bars with indicators) chunk by chunk; each chunk's text depends only on its bars.

    `kind` is `base` (intraday bars under one `# 2025-09-18 Thu` line per day, labelled by hour), `1d`
    (labelled by day of month under `# 2025-09` lines) or `1w` (labelled MM-DD under `# 2025` lines).
    Anonymised disclosures label days by their day number and use no group lines. `memo` keeps each
    chunk's text in a bounded content-addressed memo (for callers that re-encode the same bars at every
    tick); a caller keeping the texts itself passes False.
    """
    day_text = _day_text if memo else _day_text.__wrapped__
    bar_text = _bar_text if memo else _bar_text.__wrapped__
    bars = frame if isinstance(frame, Bars) else Bars.of(frame)  # days are cut in ns, whatever the unit
    values = row_values(bars, columns, disc.price_scale, disc.volume_scale)
    ts = bars.ts
    if kind == "base":
        cuts = (np.flatnonzero(np.diff(ts // _DAY_NS)) + 1).tolist()
        bounds = list(zip([0, *cuts], [*cuts, len(ts)], strict=True)) if len(ts) else []
        texts = [day_text(columns, disc, ts[a:b].tobytes(), values[a:b].tobytes()) for a, b in bounds]
        starts = np.array([ts[a] // _DAY_NS * _DAY_NS for a, _ in bounds], dtype=np.int64)
        return Chunks(
            starts, tuple(texts), np.array([b - a for a, b in bounds], dtype=np.int64), ("",) * len(texts)
        )
    groups = (
        [""] * len(ts)
        if disc.anonymised
        else list(pd.to_datetime(ts, utc=True).strftime(_GROUP_FORMAT[kind]))
    )
    texts = [
        bar_text(
            kind,
            columns,
            disc,
            ts[i : i + 1].tobytes(),
            values[i : i + 1].tobytes(),
            groups[i],
            groups[i - 1] if i else "",
        )
        for i in range(len(ts))
    ]
    leads = tuple(
        f"# {g}\n" if g and not x.startswith("#") else "" for g, x in zip(groups, texts, strict=True)
    )
    return Chunks(ts, tuple(texts), np.ones(len(ts), dtype=np.int64), leads)


def last_bars(texts: Sequence[str], keep: int) -> str:
    """The last `keep` bars of intraday chunks, with the day line above the first of them."""
    lines = "".join(texts[-max(1, keep) :]).splitlines(keepends=True)
    out: list[str] = []
    bars = 0
    for line in reversed(lines):
        if line.startswith("#"):
            out.append(line)
            if bars >= keep:
                break
        elif bars < keep:
            out.append(line)
            bars += 1
    return "".join(reversed(out))


_DAY_NS = 86_400_000_000_000
_GROUP_FORMAT = {"1d": "%Y-%m", "1w": "%Y"}


def off_the_hour(ts: np.ndarray) -> bool:
    """Whether a bar of `ts` opens at a minute other than :00: then a day labels all its bars `HH:MM`,
    else `HH`."""
    return bool(np.any((ts % _DAY_NS) // 1_000_000_000 % 3600 // 60))


def day_lines(bars: Bars, columns: tuple[str, ...], disc: Disclosure, lo: int, hi: int, minutes: bool) -> str:
    """The lines of intraday bars [lo, hi) of one day, as `encode_chunks` writes them below the day line
    when the day's label format is `minutes` (`off_the_hour` of the whole day); `lo > 0` (the change of bar
    `lo` is read from the bar before). For a caller extending a day in progress bar by bar."""
    values = row_values(bars.rows(lo - 1, hi), columns, disc.price_scale, disc.volume_scale)[1:]
    return "".join(encode_rows(_hour_labels(bars.ts[lo:hi], minutes), values, columns))


def _hour_labels(ts: np.ndarray, minutes: bool) -> list[str]:
    seconds = (ts % _DAY_NS) // 1_000_000_000
    hours = (seconds // 3600).tolist()
    if minutes:
        return [f"{h:02d}:{m:02d}" for h, m in zip(hours, (seconds % 3600 // 60).tolist(), strict=True)]
    return [f"{h:02d}" for h in hours]


@lru_cache(maxsize=16_384)  # ~2 KB per entry: 5 years of days for several symbols
def _day_text(columns: tuple[str, ...], disc: Disclosure, ts_bytes: bytes, values_bytes: bytes) -> str:
    """One day of intraday bars (content-addressed: the cache cannot mix inputs)."""
    ts = np.frombuffer(ts_bytes, dtype=np.int64)
    values = np.frombuffer(values_bytes, dtype=np.float64).reshape(len(ts), len(columns))
    day = pd.Timestamp(int(ts[0]) // _DAY_NS * _DAY_NS, tz="UTC")
    head = f"# {disc.day_label(day)}" + ("" if disc.anonymised else day.strftime(" %a")) + "\n"
    return head + "".join(encode_rows(_hour_labels(ts, off_the_hour(ts)), values, columns))


@lru_cache(maxsize=32_768)
def _bar_text(
    kind: str,
    columns: tuple[str, ...],
    disc: Disclosure,
    ts_bytes: bytes,
    values_bytes: bytes,
    group: str,
    prev_group: str,
) -> str:
    """One daily or weekly bar, opening its month/year group when the previous bar was in another."""
    stamp = pd.Timestamp(int(np.frombuffer(ts_bytes, dtype=np.int64)[0]), tz="UTC")
    values = np.frombuffer(values_bytes, dtype=np.float64).reshape(1, len(columns))
    if disc.anonymised:
        label = f"{disc.day_number(stamp):+d}"
    else:
        label = stamp.strftime("%d" if kind == "1d" else "%m-%d")
    lead = f"# {group}\n" if group and group != prev_group else ""
    return lead + encode_rows([label], values, columns)[0]
