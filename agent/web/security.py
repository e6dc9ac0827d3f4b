"""What makes the dashboard safe by default: the token, the cross-site checks and the response headers.

Contracts:
- `Guard.token` is always set: the one given (`tradegraph serve --token`, or `TRADEGRAPH_WEB_TOKEN`), or a
  random one made at start. Controls (every non-GET request) need it in the `X-Tradegraph-Token` header
  (or `Authorization: Bearer`); a cookie alone never authorises a control.
- Reads need the token only when it was given (`protect_reads`: required off the loopback interface): in an
  `Authorization: Bearer` / `X-Tradegraph-Token` header, or the `tg_token` cookie that opening any page with
  `?token=...` sets (HttpOnly, SameSite=Strict). A page read with a valid token carries it in a `<meta>`
  element for its own script, which sends it as the header.
- Cross-site: a control is refused (403) when `Sec-Fetch-Site` is present and not `same-origin`/`none`, or
  when `Origin` (or, without it, `Referer`) is present and is not this server's own origin (the request's
  `Host`). On the loopback interface the `Host` must be a loopback name (no DNS rebinding).
- Every response carries a strict Content-Security-Policy: scripts only with this response's nonce
  (`request.state.nonce`, fresh per response), no object, frame or base URI, connections to self only;
  plus `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`, `X-Frame-Options: DENY`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.responses import Response

TOKEN_HEADER = "X-Tradegraph-Token"
TOKEN_COOKIE = "tg_token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def csp(nonce: str) -> str:
    """The Content-Security-Policy of a response whose scripts carry `nonce`."""
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; "  # plotly.js adds its own style elements when drawing
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    )


@dataclass(frozen=True)
class Guard:
    """The token and the rules applied to each request (see the module contract)."""

    token: str
    protect_reads: bool
    loopback_only: bool

    @classmethod
    def make(cls, token: str | None, loopback_only: bool = True) -> Guard:
        """A guard with `token`, or with a fresh random one (then reads stay open)."""
        if token is not None and len(token) < 8:
            raise ValueError("the dashboard token must have at least 8 characters")
        return cls(token or secrets.token_urlsafe(24), token is not None, loopback_only)

    def presented(self, request: Request, *, cookie: bool) -> bool:
        """The request carries the token (in a header, or in the cookie when `cookie`)."""
        given = request.headers.get(TOKEN_HEADER)
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None and cookie:
            given = request.cookies.get(TOKEN_COOKIE)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def check_read(self, request: Request) -> None:
        """401 when reads are protected and the request has no valid token."""
        self._check_host(request)
        if self.protect_reads and not self.presented(request, cookie=True):
            raise HTTPException(401, "a token is required (open the dashboard with ?token=...)")

    def check_control(self, request: Request) -> None:
        """403 for a cross-site request, 401 without the token in a header."""
        self._check_host(request)
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise HTTPException(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
        host = request.headers.get("host", "")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != host):
            raise HTTPException(403, "cross-site request refused (Origin is not this server)")
        if not self.presented(request, cookie=False):
            raise HTTPException(401, f"controls need the token in the {TOKEN_HEADER} header")

    def _check_host(self, request: Request) -> None:
        if not self.loopback_only:
            return
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            raise HTTPException(400, "this dashboard answers on the loopback interface only")


def _origin_of(referer: str | None) -> str | None:
    if not referer:
        return None
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}"


async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware: a fresh nonce for the response, and the security headers (module contract)."""
    nonce = secrets.token_urlsafe(16)
    request.state.nonce = nonce
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = csp(nonce)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
