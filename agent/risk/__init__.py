"""Risk layer: deterministic sizing and limits between what a strategy or the model proposes and the broker.

Everything here is pure: `allowance` (before the model is asked), `apply_limits` (every clamp recorded),
`allocation` (the tick's increases share the book's room), `book` (the gross and cash arithmetic the
allowance, the allocation and the broker's fill share), `breakers` (daily loss, drawdown, cooldown, kill
switch) and `sizing`.
"""
