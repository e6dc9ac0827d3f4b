"""Tests of agent.ledger."""
