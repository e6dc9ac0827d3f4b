"""Evaluation campaigns (`tradegraph eval CAMPAIGN.toml`): many recorded runs, one honest table."""
