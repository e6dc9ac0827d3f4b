"""Runs: the run lifecycle (kinds, statuses, ids, create/finish/fail) and reading the `runs` table back."""
