"""What a fine-tune will cost, said before it starts: its forecast (``forecast``) and that forecast held
against the budget (``budget_check``, which reads the trainer as ``records.finetune_run.FinetuneRun``).
What a run used is recorded by its step (``steps.accounting``)."""
