"""Risk layer: deterministic sizing and limits between what a strategy or the model proposes and the broker.

Everything here is pure: `allowance` (before the model is asked), `apply_limits` (every clamp recorded),
`breakers` (daily loss, drawdown, cooldown, kill switch) and `sizing`.
"""
