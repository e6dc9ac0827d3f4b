"""The dashboard's two scripts, served from its own origin: plotly.js from the installed plotly package
(offline, no CDN) and the dashboard script below (controls and live updates).

Contracts:
- The dashboard script builds every row it adds with `textContent` (never `innerHTML`): text from the
  server is data. It sends controls with `fetch` and the token from `<meta name="tg-token">` in the
  `X-Tradegraph-Token` header (same origin, no cookie needed), then reloads the page to show the new state.
- Live updates: one `EventSource` on `/api/v1/events` (the newest decision id shown, the run filter);
  `decision` events add a row at the top of the live table, `health` events update the daemon's state.
"""

from __future__ import annotations

from functools import cache

DASHBOARD_JS = r"""
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="tg-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  var buttons = document.querySelectorAll("button[data-control]");
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var name = b.getAttribute("data-control");
      var who = document.getElementById("who");
      var url = name === "kill_switch" ? "/api/v1/kill-switch" : "/api/v1/pause";
      fetch(url, {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-Tradegraph-Token": token},
        body: JSON.stringify({
          active: b.getAttribute("data-active") === "true", who: who ? who.value : "dashboard"
        })
      }).then(function (r) {
        if (r.ok) { window.location.reload(); return; }
        document.getElementById("control-status").textContent = "refused: HTTP " + r.status;
      });
    });
  });
  var live = document.querySelector("tbody[data-live]");
  var state = document.getElementById("health-state");
  if (!live && !state) { return; }
  var params = new URLSearchParams();
  if (live) {
    params.set("after", live.getAttribute("data-after") || "0");
    if (live.getAttribute("data-run")) { params.set("run_id", live.getAttribute("data-run")); }
  }
  var source = new EventSource("/api/v1/events?" + params.toString());
  function text(value) { return value === null || value === undefined ? "" : String(value); }
  function num(value) {
    return typeof value === "number" ? String(Math.round(value * 1e4) / 1e4) : text(value);
  }
  function when(ms) { return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }
  function link(href, label) {
    var a = document.createElement("a"); a.href = href; a.textContent = label; return a;
  }
  source.addEventListener("decision", function (event) {
    if (!live) { return; }
    var d = JSON.parse(event.data);
    var row = document.createElement("tr");
    row.setAttribute("data-id", text(d.id));
    var cells = [
      link("/decisions/" + encodeURIComponent(d.id), text(d.id)), when(d.bar_ts),
      link("/runs/" + encodeURIComponent(d.run_id), text(d.run_id)), text(d.symbol), text(d.source),
      text(d.action) + (d.abstained ? " (abstained)" : ""), num(d.target_exposure), num(d.final_exposure),
      num(d.confidence), d.clamps.map(function (c) { return c.kind; }).join(", "),
      d.orders.map(function (o) {
        return o.side + " " + num(o.amount) + " @ " + num(o.price) + " " + o.status;
      }).join(", "),
      text(d.rationale || d.abstain_reason || "").slice(0, 160)
    ];
    cells.forEach(function (c) {
      var td = document.createElement("td");
      if (typeof c === "string") { td.textContent = c; } else { td.appendChild(c); }
      row.appendChild(td);
    });
    live.insertBefore(row, live.firstChild);
  });
  source.addEventListener("health", function (event) {
    if (!state) { return; }
    var h = JSON.parse(event.data);
    state.textContent = h.state;
    state.className = "state-" + h.state;
    var reason = document.getElementById("health-reason");
    if (reason) { reason.textContent = text(h.reason); }
    var bar = document.getElementById("last-bar");
    if (bar && h.last_tick) { bar.textContent = when(h.last_tick.bar_ts); }
  });
})();
"""


@cache
def plotly_js() -> str:
    """plotly.js from the installed plotly package."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())
