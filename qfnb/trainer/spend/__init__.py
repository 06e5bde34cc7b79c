"""What a fine-tune costs: its forecast before it starts (``forecast``), that forecast held against
the budget (``budget_check``) and its ledger row once it ends (``accounting``). Imports ``settings`` only
of the trainer's rooms."""
