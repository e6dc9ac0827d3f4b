"""The `Transport` over Apprise: one message to every configured URL (Telegram, Slack, Discord, e-mail,
a JSON webhook, ...).

Contracts:
- Built from the URLs of `[notify] urls`: a URL Apprise does not know fails at construction with
  `ConfigError`, naming its position and scheme only (`notify.urls[1] (tgram://***)`), before the daemon
  takes its lease.
- Each URL's connect and read timeouts are `timeout_s`; Apprise's own retries are left at its default
  (none). `deliver` returns True only when every URL took the message.
- Apprise logs through the `apprise` logger; the daemon's log redaction masks the URLs' secret parts
  (`agent.notify.secrets.url_secrets`).
"""

from __future__ import annotations

from collections.abc import Sequence

import apprise

from agent.errors import ConfigError
from agent.notify.secrets import show_url
from agent.notify.text import Message


class AppriseTransport:
    """Sends a message to each Apprise URL (see the module contract)."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 10.0) -> None:
        self._apprise = apprise.Apprise()
        for i, url in enumerate(urls):
            service = apprise.Apprise.instantiate(url)
            if service is None:
                raise ConfigError(f"notify.urls[{i}] ({show_url(url)}) is not a URL Apprise can send to")
            service.socket_connect_timeout = timeout_s
            service.socket_read_timeout = timeout_s
            self._apprise.add(service)
        self.count = len(urls)

    def deliver(self, message: Message) -> bool:
        """Send `message` to every URL; True when all took it."""
        return bool(self._apprise.notify(body=message.body, title=message.title))
