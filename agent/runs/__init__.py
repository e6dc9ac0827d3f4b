"""Runs: the run lifecycle (kinds, statuses, ids, create/update/finish/fail), the one metric set every run
stores (`metrics`, from `curve` and `trades`), the figures of a run in progress (`live`), and reading runs
back (`catalog`, `tables`)."""
