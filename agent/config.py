"""Typed configuration: one `Settings` object read from `tradegraph.toml` and `TRADEGRAPH_*` variables.

Contracts:
- Precedence (highest first): explicit keyword arguments, environment (`TRADEGRAPH_*`, nested keys joined
  with `__`, e.g. `TRADEGRAPH_RISK__MAX_GROSS_EXPOSURE`), the TOML file, then the defaults below.
- The TOML file is `./tradegraph.toml`, or the path in `TRADEGRAPH_CONFIG`.
- Unknown keys are errors (`extra="forbid"`), so a typo fails at load instead of being ignored.
- Numbers must be finite: `inf` and `nan` are refused for every setting (`allow_inf_nan=False`).
- `symbols` lists each symbol once (compared case-insensitively).
- Relative paths (`data_dir`, `risk.kill_switch_file`) are taken from the configuration file's folder (the
  working directory for `./tradegraph.toml`) and stored absolute, so a process that changes directory, or a
  daemon started elsewhere, reads the same files.
- Everything tradegraph writes lives under `data_dir` (default `data/` beside the configuration file): the
  SQLite database, downloads (`store/`), reports (`reports/`) and the daemon's logs (`logs/`). The bundled
  sample is read from `<data_dir>/binance/` or, failing that, from the one shipped with tradegraph.
- Secrets are `SecretStr`: never printed; `masked_dump()` is what `tradegraph config show` prints and what
  runs record, with credentials inside URLs masked too (`agent.redact.mask_url_credentials`); the
  notification URLs (`notify.urls`, tokens in their paths) show as `scheme://***`.
- An invalid value raises `ConfigError` with one line naming the key, the bad value and what is allowed.
- `mode` is `paper` only; anything else is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.errors import ConfigError
from agent.redact import mask_url_credentials

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout root (where `data/` with the bundled sample lives)."""

DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
"""The checkout's `data/` folder, whose `binance/` holds the bundled sample (not the default `data_dir`)."""

SHARED_DIR = Path(os.environ.get("TRADEGRAPH_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
"""Read-only material beside the checkout (full Binance history, ccxt fixtures); tests and benchmarks only."""


def config_path() -> Path:
    """Where the TOML configuration is read from."""
    return Path(os.environ.get("TRADEGRAPH_CONFIG", "tradegraph.toml"))


def config_dir() -> Path:
    """The configuration file's folder (absolute): relative paths in the settings are taken from here."""
    return config_path().expanduser().absolute().parent


def _from_config_dir(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else config_dir() / path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ExchangeSettings(_Section):
    """Which exchange ccxt talks to, or `replay` for the bundled offline data."""

    id: str = Field("replay", description="ccxt exchange id (e.g. binance) or 'replay' for bundled data")
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = None
    api_url: str | None = Field(
        None,
        description="replaces scheme and host of every ccxt urls['api'] entry (emulators, proxies)",
    )
    timeout_ms: int = Field(10_000, ge=100)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    concurrency: int = Field(4, ge=1, le=64)


class LLMSettings(_Section):
    """The OpenAI-compatible endpoint. `base_url = None` means: start the embedded local model."""

    profile: str = Field("llamacpp", description="a row of agent.llm.profiles.PROFILES; checked where used")
    base_url: str | None = Field(None, description="e.g. http://gpu-host:8000/v1; None = embedded local")
    api_key: SecretStr = SecretStr("EMPTY")
    model: str | None = Field(None, description="model id; None = first id from /v1/models")
    max_tokens: int = Field(512, ge=16)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int | None = 1234
    thinking: Literal["on", "off", "low"] = "off"
    thinking_token_budget: int | None = Field(None, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(8, ge=1, le=256)
    context_tokens: int | None = Field(None, ge=512, description="prompt budget; None = from max_model_len")
    cache_mode: Literal["off", "read", "write", "readwrite"] = "readwrite"
    circuit_failures: int = Field(5, ge=1)
    circuit_cooldown_s: float = Field(30.0, ge=0)
    max_response_bytes: int = Field(256 * 1024, ge=4096, description="cap on one answer's HTTP body")
    leakage_control: bool = False
    prompt_mode: Literal["stateful", "stateless"] = Field(
        "stateful",
        description="stateful: the prompt shows the account, positions and past decisions; stateless: the "
        "market only, so an agent backtest asks many bars at once (docs/context.md)",
    )
    local_port: int = Field(8765, ge=1, le=65535)
    local_threads: int | None = Field(None, ge=1)
    local_n_ctx: int = Field(8192, ge=512)


class RiskSettings(_Section):
    """Deterministic limits the risk layer enforces whatever the model proposes."""

    max_position_exposure: float = Field(0.5, ge=0, le=1, description="per-symbol fraction of equity")
    max_gross_exposure: float = Field(1.0, ge=0, le=1, description="sum over symbols (spot: <= 1)")
    min_cash_fraction: float = Field(0.0, ge=0, le=1)
    risk_per_trade: float = Field(0.02, gt=0, le=1, description="equity fraction lost if the stop is hit")
    atr_period: int = Field(14, ge=2)
    default_stop_atr: float = Field(2.0, gt=0)
    default_take_profit_atr: float = Field(4.0, gt=0)
    daily_loss_limit: float = Field(0.05, gt=0, le=1)
    max_drawdown: float = Field(0.25, gt=0, le=1)
    cooldown_bars: int = Field(3, ge=0)
    min_confidence: float = Field(0.0, ge=0, le=1)
    kill_switch_file: str | None = Field(None, description="if this file exists, no new entries")

    @field_validator("kill_switch_file")
    @classmethod
    def _absolute_kill_switch(cls, v: str | None) -> str | None:
        return str(_from_config_dir(Path(v))) if v else v


class ScaleSettings(_Section):
    """Where sweeps and campaigns run their tasks (`agent.scale.executor`)."""

    executor: Literal["local", "ray"] = Field("local", description="local process pool, or a Ray cluster")
    workers: int | None = Field(None, ge=1, description="local processes (None: every core)")
    ray_address: str = Field(
        "auto", description="auto (a running cluster, else a local one) or ray://host:10001"
    )
    llm_in_flight: int | None = Field(
        None, ge=1, description="campaign-wide cap on model requests in flight (None: llm.concurrency)"
    )


class BrokerSettings(_Section):
    """Paper broker costs (the backtest engine uses the same numbers)."""

    initial_cash: float = Field(10_000.0, gt=0)
    quote_currency: str = "USDT"
    taker_fee: float | None = Field(None, ge=0, le=0.1, description="None = from the ccxt market")
    maker_fee: float | None = Field(None, ge=0, le=0.1)
    slippage_bps: float = Field(5.0, ge=0, le=1000)
    max_participation: float | None = Field(None, gt=0, le=1, description="cap on fill / bar volume")
    fixed_fee: float = Field(
        0.0, ge=0, description="quote currency charged on every fill, on top of the proportional fee"
    )
    initial_position: dict[str, float] = Field(
        default_factory=dict,
        description="symbol -> fraction of the initial equity held from the first bar's open (no costs)",
    )

    @field_validator("initial_position")
    @classmethod
    def _check_initial_position(cls, v: dict[str, float]) -> dict[str, float]:
        for symbol, share in v.items():
            if "/" not in symbol:
                raise ValueError(f"initial_position: {symbol!r} must look like BASE/QUOTE, e.g. BTC/USDT")
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"initial_position: {symbol} {share} must be a fraction of equity in [0, 1]")
        if sum(v.values()) > 1.0 + 1e-12:
            raise ValueError(f"initial_position: the fractions sum to {sum(v.values()):g}, more than 1")
        return v


NotifyKind = Literal["fill", "breaker", "kill_switch", "health", "summary"]
"""What a notification is about (`agent.notify.events`): a fill, a risk breaker tripping, the kill switch
turned on or off, the daemon degraded, stalled or recovered, the daily summary."""
NOTIFY_KINDS: tuple[NotifyKind, ...] = ("fill", "breaker", "kill_switch", "health", "summary")


class NotifySettings(_Section):
    """Notifications (`agent.notify`): where they go, how many per minute, about what."""

    urls: list[SecretStr] = Field(
        default_factory=list,
        description="Apprise URLs (tgram://, slack://, discord://, mailto://, json://, ...); none = off",
    )
    rate_per_minute: int = Field(
        20, ge=1, le=600, description="messages per minute; beyond it, events are sent as one digest"
    )
    events: list[NotifyKind] = Field(default_factory=lambda: list(NOTIFY_KINDS))
    summary_hour_utc: int = Field(0, ge=0, le=23, description="the daily summary at this hour (daemon clock)")
    queue_size: int = Field(1000, ge=1, description="events waiting to be sent; beyond it they are counted")
    timeout_s: float = Field(10.0, gt=0, le=300, description="one HTTP send, per URL")


class Settings(BaseSettings):
    """The effective configuration of one tradegraph process."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEGRAPH_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
    )

    mode: Literal["paper"] = "paper"
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTC/USDT", "ETH/USDT"])
    timeframe: Literal["1m", "5m", "15m", "1h", "4h", "1d", "1w"] = "1h"
    data_dir: Path = Path("data")
    database_url: str | None = Field(None, description="SQLAlchemy URL; None = sqlite file in data_dir")
    strategy: str = "llm"
    fallback: Literal["hold", "rule"] = "hold"
    fallback_strategy: str = "sma_cross"
    stale_after_bars: int = Field(2, ge=1)
    tick_delay_s: float = Field(10.0, ge=0)
    log_format: Literal["text", "json"] = "text"
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, v: list[str]) -> list[str]:
        for s in v:
            if "/" not in s:
                raise ValueError(f"symbol {s!r} must look like BASE/QUOTE, e.g. BTC/USDT")
        if not v:
            raise ValueError("at least one symbol is required")
        seen: set[str] = set()
        for s in v:
            if s.upper() in seen:
                raise ValueError(f"{s.upper()} is listed more than once")
            seen.add(s.upper())
        return v

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, v: Path) -> Path:
        return _from_config_dir(v)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
        )

    @property
    def db_url(self) -> str:
        """The database URL in force (the SQLite default lives in the data directory)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'tradegraph.db'}"

    @property
    def reports_dir(self) -> Path:
        """Where run reports are written (`<data_dir>/reports/<run id>/`)."""
        return self.data_dir / "reports"

    @property
    def logs_dir(self) -> Path:
        """Where the daemon's log files go."""
        return self.data_dir / "logs"

    def masked_dump(self) -> dict[str, Any]:
        """The configuration as plain data: every secret replaced by '***', URL credentials masked."""
        data = self.model_dump(mode="json")
        _mask(data, self)
        return data


def _mask(data: dict[str, Any], model: BaseModel) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            data[name] = "***" if value.get_secret_value() else ""
        elif isinstance(value, BaseModel):
            _mask(data[name], value)
        elif isinstance(value, list) and any(isinstance(v, SecretStr) for v in value):
            data[name] = [_masked_secret_url(v) for v in value]
        elif isinstance(data[name], str):
            data[name] = mask_url_credentials(data[name])


def _masked_secret_url(value: object) -> str:
    """A secret URL as `scheme://***` (its service shows, nothing of its address or tokens)."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    scheme, sep, _ = text.partition("://")
    return f"{scheme}://***" if sep and scheme.isidentifier() else "***"


def load_settings(**overrides: Any) -> Settings:
    """Load the configuration, turning validation failures into one readable `ConfigError`."""
    path = config_path()
    if "TRADEGRAPH_CONFIG" in os.environ and not path.exists():
        raise ConfigError(f"config file {path} (from TRADEGRAPH_CONFIG) does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_describe(e)) from None
    except Exception as e:  # TOML syntax errors come from tomllib
        raise ConfigError(f"cannot read configuration {path}: {e}") from None


def _describe(e: ValidationError) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        return f"unknown configuration key {key!r}"
    allowed = err.get("ctx", {}).get("expected") or err["msg"]
    if key == "mode":
        allowed = "only 'paper' is supported (live trading is not implemented)"
    secret = "key" in key or "secret" in key or "password" in key or key.startswith("notify.urls")
    shown = "***" if secret else repr(value)
    return f"invalid configuration {key}={shown}: {allowed}"
