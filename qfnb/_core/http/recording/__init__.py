"""How the HTTP client applies the record (:mod:`qfnb._core.record`) to what it sends: one model call
(recorded: cache lookup, budget reservation, ledger row, provenance), a batch task (batch_hold) and a
fine-tune (train_hold) held against the budget and settled, and the one line said when the local platform
answers a cloud model's name (substitution). The record stage (``stages.record``) drives it; it imports
no stage."""
