"""Reading runs back from the ledger as pandas objects, and judging them: metrics, calibration, reports."""
