"""Risk layer: deterministic sizing and limits between what a strategy or the model proposes and the broker."""
