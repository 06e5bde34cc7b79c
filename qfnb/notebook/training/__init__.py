"""``%qftrain``: launching and attaching to fine-tunes (``run``), the launcher form, the job list,
and the live training dashboard with its view-model (``dashboard``, ``state``); a job's coroutine
started on qfnb's loop with its displays routed like a thread's (``_background``).
Imports ``render``, ``widgets``, the notebook's shared modules and the SDK; never chat, evaluation or data."""
