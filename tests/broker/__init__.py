"""Tests of agent.broker."""
