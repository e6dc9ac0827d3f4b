"""How chatty the CLI is: third-party log lines and llama.cpp's native messages only with `--verbose`.

Contracts:
- `configure(verbose)` runs once per command (the root callback of `agent.cli.main`). Without `--verbose`
  the HTTP clients' loggers (`NOISY`: one INFO line per request) are held at WARNING and llama.cpp's native
  messages are dropped; with it, INFO records of every logger go to stderr as text lines and llama.cpp's
  messages go to the `llama.cpp` logger.
- `is_verbose()` answers for the current process (e.g. `run` passes it on to the daemon's logging setup).
- `quiet_native_logs()` routes llama.cpp's native log (the tokenizer's start-up warnings such as
  `llama_context: n_ctx_seq ... possible training context overflow`, printed by the C library straight to
  stderr) into the `llama.cpp` logger. Commands that may load a GGUF in this process call it before they
  do; it imports llama-cpp-python only when it is installed, so other commands stay fast.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
from typing import Any

NOISY = ("httpx", "httpx2", "httpcore", "openai")
"""Loggers that log every HTTP request at INFO (the OpenAI client's transport among them)."""
LLAMA_LOGGER = "llama.cpp"
_GGML_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
"""ggml's `ggml_log_level` (NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5) as logging levels."""

_state: dict[str, Any] = {"verbose": False, "callback": None}


def configure(verbose: bool) -> None:
    """Set the CLI's verbosity (see the module contract)."""
    _state["verbose"] = verbose
    if verbose:
        from agent.daemon.logging import setup_logging

        setup_logging("text", None, level=logging.INFO, quiet=False)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger(LLAMA_LOGGER).setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)


def is_verbose() -> bool:
    """Whether `--verbose` was given."""
    return bool(_state["verbose"])


def quiet_native_logs() -> None:
    """Route llama.cpp's native log into the `llama.cpp` logger (a no-op without llama-cpp-python)."""
    if _state["callback"] is not None or importlib.util.find_spec("llama_cpp") is None:
        return
    import llama_cpp

    logger = logging.getLogger(LLAMA_LOGGER)
    last = [logging.DEBUG]

    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        mapped = last[0] if level == 5 else _GGML_LEVELS.get(level, logging.DEBUG)
        last[0] = mapped
        line = text.decode("utf-8", "replace").rstrip()
        if line and logger.isEnabledFor(mapped):
            logger.log(mapped, "%s", line)

    callback = llama_cpp.llama_log_callback(forward)
    _state["callback"] = callback  # the C library keeps only a pointer: keep the function alive
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
