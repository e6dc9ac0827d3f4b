"""The dashboard's FastAPI application: pages, `/api/v1`, the two scripts, and the security middleware.

Contracts:
- `create_app(settings, *, token=None, loopback_only=True)` opens the database read-only for every query
  and writable for the control table only (`agent.web.db`), and builds the guard (`agent.web.security`):
  with `token` None a random one is made (reads open, controls need it; the page's own script has it).
- OpenAPI at `/openapi.json` (the API routes; the pages are left out). `/assets/plotly.js` and
  `/assets/dashboard.js` are the only scripts, served with the response's CSP nonce on their tags.
- While the app runs (its lifespan), `agent.web.drawn.Warmer` keeps the daemon run's charts drawn; at its
  start the objects loaded so far are frozen out of the garbage collector (`gc.freeze`).
- `app.state.web` holds the state; `close(app)` stops the warmer and disposes of both engines.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from agent.config import Settings
from agent.web import api, views
from agent.web.assets import DASHBOARD_JS, plotly_js
from agent.web.db import open_controls, open_reader
from agent.web.deps import Web
from agent.web.drawn import Warmer
from agent.web.figures import ChartCache
from agent.web.security import Guard, security_headers

ASSET_CACHE = "public, max-age=86400"


def create_app(settings: Settings, *, token: str | None = None, loopback_only: bool = True) -> FastAPI:
    """The dashboard over `settings.db_url` (see the module contract)."""
    reader_engine, reader = open_reader(settings.db_url)
    control_engine, controls = open_controls(settings.db_url)
    cache = ChartCache()
    warmer = Warmer(cache, reader, settings.data_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (plotly, pandas, the app) lives as long as the server: moved out of the
        # collector's reach, so that its full collections scan only what requests allocate. They stalled a
        # chart drawing from 85 to 220+ ms about one request in ten (the p95 of a redrawn run page).
        gc.collect()
        gc.freeze()
        warmer.start()
        try:
            yield
        finally:
            warmer.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="tradegraph",
        summary="The dashboard API: runs, decisions, LLM traffic, daemon health; kill switch and pause.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    app.state.web = Web(reader, controls, Guard.make(token, loopback_only), settings.data_dir, cache)
    app.state.engines = (reader_engine, control_engine)
    app.state.warmer = warmer
    app.middleware("http")(security_headers)
    app.include_router(api.router)
    app.include_router(views.router)

    @app.get("/assets/plotly.js", include_in_schema=False)
    def plotly(_: Request) -> Response:
        return Response(plotly_js(), media_type="text/javascript", headers={"Cache-Control": ASSET_CACHE})

    @app.get("/assets/dashboard.js", include_in_schema=False)
    def dashboard(_: Request) -> Response:
        return Response(DASHBOARD_JS, media_type="text/javascript", headers={"Cache-Control": ASSET_CACHE})

    return app


def close(app: FastAPI) -> None:
    """Stop the chart warmer and dispose of the app's database engines."""
    app.state.warmer.stop()
    for engine in app.state.engines:
        engine.dispose()
