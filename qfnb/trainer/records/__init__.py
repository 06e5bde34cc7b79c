"""A fine-tune written down and found again: the trainer's saved record (``finetune_store``, on
``persist``'s files), the official SDK's pipeline file (``official_file``) and the reuse of an identical
finished run (``replay``). Each takes the trainer as :class:`finetune_run.FinetuneRun`, never its class.
Imports the actions and ``steps``."""
