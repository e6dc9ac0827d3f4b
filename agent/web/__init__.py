"""The web dashboard and REST API of `tradegraph serve` (issue 15): pages over the query layer, `/api/v1`,
live updates by server-sent events, and the operator's controls (kill switch, pause), safe by default."""

from agent.web.app import close, create_app

__all__ = ["close", "create_app"]
