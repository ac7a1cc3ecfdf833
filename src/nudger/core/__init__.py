"""The pure core: header records, threads, verdicts, timing, the ledger, the plan, the draft.

Nothing here does I/O, reads the environment or the clock: plain data in, decisions out."""
