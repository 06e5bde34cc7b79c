"""What a fine-tune can be set to: ``TrainConfig`` and ``TrainLimit`` (``train_config``) and the
platform's trainable models with their per-mode defaults (``model_info``). The bottom room: imports
only the trainer's consts."""
