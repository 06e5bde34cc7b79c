"""``%qftrain``: launching and attaching to fine-tunes (``run``), the launcher form, the job list,
and the live training dashboard with its view-model (``dashboard``, ``state``).
Imports ``render``, ``widgets``, the notebook's shared modules and the SDK; never chat, evaluation or data."""
