"""`tradegraph llm check|serve-local`: probe the configured LLM endpoint, or run the embedded local model.

Contracts:
- `check` prints the endpoint, the model, its context length, health, the tokenize endpoint, one decision
  round trip's latency and whether structured output works; it records nothing. An unreachable endpoint or a
  failed structured round trip is a `TradegraphError` (one line, exit 1). With `llm.base_url` unset it
  checks the embedded local server, started for the occasion.
- `serve-local` runs llama-cpp-python's server with the bundled SmolLM2 in the foreground until Ctrl-C.
- `--base-url/--profile/--model` override the configuration for this command only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import typer

from agent.cli.verbosity import quiet_native_logs
from agent.config import LLMSettings, load_settings
from agent.errors import ConfigError, LLMUnavailable
from agent.llm.profiles import profile_of


def register(app: typer.Typer) -> None:
    """Add the `llm` command group."""
    group = typer.Typer(
        help="The LLM endpoint: check it, or serve the embedded local model.", no_args_is_help=True
    )
    app.add_typer(group, name="llm")

    @group.command("check")
    def check(
        base_url: str | None = typer.Option(None, help="endpoint to check (default: llm.base_url)"),
        profile: str | None = typer.Option(None, help="vllm | llamacpp | openai (default: llm.profile)"),
        model: str | None = typer.Option(None, help="model id (default: llm.model or the first served)"),
    ) -> None:
        """Probe the endpoint and make one structured decision round trip."""
        from agent.llm.discovery import discover
        from agent.llm.gateway import LLMGateway
        from agent.llm.local_server import resolve_endpoint
        from agent.textsafe import for_plain_terminal

        llm = _override(load_settings().llm, base_url=base_url, profile=profile, model=model)
        quiet_native_logs()
        with resolve_endpoint(llm) as url:
            info = discover(url, llm)
            served = for_plain_terminal(", ".join(info.models))  # the server's text: shown, not interpreted
            print(f"endpoint:          {url} (profile {llm.profile})")
            print(f"model:             {for_plain_terminal(info.model)} (served: {served})")
            print(f"context length:    {info.max_model_len or 'unknown'} tokens ({info.context_source})")
            print(f"health:            {info.health}")
            print(f"tokenize endpoint: {info.tokenize or 'none'}")
            probe = llm.model_copy(update={"model": info.model, "cache_mode": "off"})
            with LLMGateway(probe, url) as gateway:
                result = gateway.decide_one_sync(probe_request())
            latency = f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "n/a"
            print(f"round trip:        {latency}")
            if result.abstained:
                print(f"structured output: FAILED ({for_plain_terminal(result.reason)})")
                raise LLMUnavailable(f"structured output does not work at {url}: {result.reason}")
            print(f"structured output: ok (action={result.decision.action}, schema-valid)")

    @group.command("serve-local")
    def serve_local(
        port: int | None = typer.Option(None, help="port on 127.0.0.1 (default: llm.local_port)"),
        n_ctx: int | None = typer.Option(None, help="context window (default: llm.local_n_ctx)"),
        threads: int | None = typer.Option(None, help="llama.cpp threads (default: llm.local_threads)"),
    ) -> None:
        """Run the embedded SmolLM2 server in the foreground until Ctrl-C."""
        from agent.llm.local_server import LocalLLMServer

        llm = load_settings().llm
        server = LocalLLMServer(
            port=port or llm.local_port, n_ctx=n_ctx or llm.local_n_ctx, threads=threads or llm.local_threads
        )
        with server:
            print(f"serving SmolLM2-135M at {server.base_url} (Ctrl-C to stop)", flush=True)
            print(
                f"use it with: TRADEGRAPH_LLM__PROFILE=llamacpp TRADEGRAPH_LLM__BASE_URL={server.base_url}",
                flush=True,
            )
            try:
                code = server.wait()
            except KeyboardInterrupt:
                print("stopping")
                return
        raise LLMUnavailable(f"local llama.cpp server exited with code {code}")


def _override(llm: LLMSettings, **changes: Any) -> LLMSettings:
    """`llm` with the given non-None fields replaced, validated like the configuration file."""
    from pydantic import ValidationError

    updates = {k: v for k, v in changes.items() if v is not None}
    if not updates:
        return llm
    if "profile" in updates:
        try:
            profile_of(updates["profile"])
        except ConfigError as e:
            raise ConfigError(f"invalid --profile={updates['profile']!r}: {e}") from None
    try:
        return LLMSettings.model_validate({**llm.model_dump(), **updates})
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"invalid --{key.replace('_', '-')}={err.get('input')!r}: {err['msg']}") from None


def probe_request() -> Any:
    """The decision request `check` sends: HOLD is the only allowed action."""
    from agent.llm.schema import Action, DecisionRequest

    messages = (
        {"role": "system", "content": "You are a trading assistant. Answer with one JSON object only."},
        {
            "role": "user",
            "content": "Connectivity check: return a HOLD decision for BTC/USDT with target_exposure 0, "
            "confidence 0, no stop_loss or take_profit, and a one-sentence rationale.",
        },
    )
    digest = hashlib.sha256(repr(messages).encode()).hexdigest()
    return DecisionRequest("BTC/USDT", messages, prompt_hash=digest, allowed_actions=(Action.HOLD,))
