"""Settings: precedence, validation messages, secret masking, the paper-only mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.config import load_settings
from agent.errors import ConfigError


def test_defaults_are_embedded_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEGRAPH_DATABASE_URL")  # set by the autouse fixture; here we test the default
    s = load_settings()
    assert s.mode == "paper"
    assert s.exchange.id == "replay"
    assert s.llm.base_url is None  # embedded local model
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("tradegraph.db")


def test_toml_then_env_then_kwargs_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tradegraph.toml").write_text(
        'timeframe = "1d"\nsymbols = ["SOL/USDT"]\n[risk]\nmax_gross_exposure = 0.8\n'
    )
    s = load_settings()
    assert (s.timeframe, s.symbols, s.risk.max_gross_exposure) == ("1d", ["SOL/USDT"], 0.8)
    monkeypatch.setenv("TRADEGRAPH_RISK__MAX_GROSS_EXPOSURE", "0.6")
    monkeypatch.setenv("TRADEGRAPH_SYMBOLS", "BTC/USDT,ETH/USDT")
    s = load_settings()
    assert s.risk.max_gross_exposure == 0.6
    assert s.symbols == ["BTC/USDT", "ETH/USDT"]
    assert load_settings(timeframe="4h").timeframe == "4h"


def test_mode_other_than_paper_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_MODE", "live")
    with pytest.raises(ConfigError) as e:
        load_settings()
    msg = str(e.value)
    assert "mode" in msg and "'live'" in msg and "paper" in msg
    assert "\n" not in msg


def test_invalid_value_names_key_value_and_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_RISK__MAX_GROSS_EXPOSURE", "3")
    with pytest.raises(ConfigError) as e:
        load_settings()
    msg = str(e.value)
    assert "risk.max_gross_exposure" in msg and "3" in msg and "less than or equal to 1" in msg


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "tradegraph.toml").write_text("[risk]\nmax_gross_exposur = 0.5\n")
    with pytest.raises(ConfigError, match="unknown configuration key 'risk.max_gross_exposur'"):
        load_settings()


def test_bad_symbol_and_missing_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRADEGRAPH_SYMBOLS", "BTCUSDT")
    with pytest.raises(ConfigError, match="BASE/QUOTE"):
        load_settings()
    monkeypatch.delenv("TRADEGRAPH_SYMBOLS")
    monkeypatch.setenv("TRADEGRAPH_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_config_show_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE__API_KEY", "sekrit-key-123")
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE__SECRET", "sekrit-secret-456")
    monkeypatch.setenv("TRADEGRAPH_LLM__API_KEY", "sekrit-llm-789")
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", "postgresql+psycopg://bob:pw-000@db.example/trade")
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    for secret in ("sekrit-key-123", "sekrit-secret-456", "sekrit-llm-789", "pw-000"):
        assert secret not in result.output
    data = json.loads(result.output)
    assert data["exchange"]["api_key"] == "***"
    assert data["llm"]["api_key"] == "***"
    assert "***" in data["database_url"] and "bob" in data["database_url"]
    table = CliRunner().invoke(app, ["config", "show"])
    assert table.exit_code == 0 and "sekrit" not in table.output


def test_cli_reports_bad_config_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_TIMEFRAME", "7m")
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "config", "show"], capture_output=True, text=True
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid configuration timeframe='7m'")


# ------------------------------------------------------------------ non-finite numbers, symbols, paths


def _float_keys() -> list[str]:
    """Every float setting, as a dotted key (found from the models, so a new float setting is covered)."""
    from pydantic import BaseModel

    from agent.config import Settings

    keys = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            fields = section.model_fields.items()
            scalar = [(sub, str(f.annotation)) for sub, f in fields if "dict" not in str(f.annotation)]
            keys += [f"{name}.{sub}" for sub, annotation in scalar if "float" in annotation]
        elif "float" in str(field.annotation):
            keys.append(name)
    return keys


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
@pytest.mark.parametrize("key", _float_keys())
def test_non_finite_numbers_are_refused_for_every_setting(
    key: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEGRAPH_" + key.upper().replace(".", "__"), value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    msg = str(e.value)
    assert key in msg and "finite" in msg and "\n" not in msg


def test_non_finite_numbers_in_the_toml_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "tradegraph.toml").write_text("[broker]\ninitial_cash = inf\n")
    with pytest.raises(ConfigError, match=r"broker\.initial_cash.*finite"):
        load_settings()
    assert _float_keys(), "the settings have float keys"


@pytest.mark.parametrize("symbols", ["BTC/USDT,ETH/USDT,BTC/USDT", "BTC/USDT,btc/usdt"])
def test_duplicate_symbols_are_refused(symbols: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_SYMBOLS", symbols)
    with pytest.raises(ConfigError, match=r"symbols.*BTC/USDT.*more than once"):
        load_settings()
    with pytest.raises(ConfigError, match="more than once"):
        load_settings(symbols=["ETH/USDT", "ETH/USDT"])


def test_relative_paths_are_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.risk.breakers import kill_switch_active

    home = tmp_path / "home"
    home.mkdir()
    (home / "tradegraph.toml").write_text('data_dir = "state"\n[risk]\nkill_switch_file = "STOP"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("TRADEGRAPH_CONFIG", str(home / "tradegraph.toml"))
    s = load_settings()
    assert s.risk.kill_switch_file == str(home / "STOP")
    assert s.data_dir == home / "state"
    assert not kill_switch_active(s.risk.kill_switch_file)
    (elsewhere / "STOP").touch()  # the working directory's file is not the switch
    assert not kill_switch_active(s.risk.kill_switch_file)
    (home / "STOP").touch()
    assert kill_switch_active(s.risk.kill_switch_file)
    absolute = tmp_path / "ABS"
    monkeypatch.setenv("TRADEGRAPH_RISK__KILL_SWITCH_FILE", str(absolute))
    assert load_settings().risk.kill_switch_file == str(absolute)


def test_everything_written_lives_under_one_folder_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEGRAPH_DATABASE_URL")  # set by the autouse fixture; here we test the default
    s = load_settings()  # the test runs in tmp_path, which has no tradegraph.toml
    assert s.data_dir == tmp_path / "data"
    assert s.db_url == f"sqlite:///{tmp_path / 'data' / 'tradegraph.db'}"
    assert (s.reports_dir, s.logs_dir) == (tmp_path / "data" / "reports", tmp_path / "data" / "logs")
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "chosen"))
    s = load_settings()
    assert s.db_url == f"sqlite:///{tmp_path / 'chosen' / 'tradegraph.db'}"
    assert s.reports_dir == tmp_path / "chosen" / "reports" and s.logs_dir == tmp_path / "chosen" / "logs"
