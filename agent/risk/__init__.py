"""Risk layer: deterministic sizing and limits between what a strategy or the model proposes and the broker.

Everything here is pure: `allowance` (before the model is asked), `apply_limits` (every clamp recorded),
`allocation` (the tick's increases share the book's room), `book` (the gross and cash arithmetic the
allowance, the allocation and the broker's fill share), `breakers` (daily loss, drawdown, cooldown, kill
switch; `kill_switch_active` alone reads the file system) and `sizing`.

Each function receives typed records (`inputs.Market`, `inputs.Proposal`, `PortfolioState`, `Allowance`)
and only the settings it reads (`RiskSettings`, the configured symbols, single limits), never the whole
`Settings`.
"""
