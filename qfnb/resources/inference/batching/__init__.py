"""A batch's run: the one async engine, at most ``worker_num`` calls in flight, each input sent once
(engine: :func:`run_batch`), how ``abatch_do``/``batch_do`` run through it (runs), inputs packed several to a
call (packing) and where the results go: a list, per-input futures, a JSONL file (results)."""
