"""Running an evaluation: ``EvaluationManager`` (``manager``), the models' answers and their store
(``answers``, ``batch_answers``, ``batch_output``), a platform task (``platform``) and the sequential
run (``sequential_eval``). The top room: imports the other three and the shared modules."""
