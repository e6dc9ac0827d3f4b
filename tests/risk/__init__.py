"""Tests of agent.risk."""
