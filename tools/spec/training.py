"""``%qftrain``'s hyperparameter options, declared once: each option's flags, the field the magic
sets, the hyperparameter it becomes and its doc line.

The hyperparameter is a key of ``qfnb.protocol.console.training.LIMITS``, the one home of its type and
range (the console, the training worker and ``TrainConfig`` apply the same table): the generated
``qfnb/notebook/magic_options.py`` reads both from there, and the ``TrainConfig`` field is the
key in snake case. ``python tools/generate.py`` writes it (``--check`` fails on drift).
"""

from __future__ import annotations

from spec.schema import TrainOption

#: in %qftrain's help order
TRAIN_OPTIONS = (
    TrainOption("epochs", ("--epochs",), "epoch", "training epochs."),
    TrainOption("lr", ("--lr",), "learningRate", "learning rate."),
    TrainOption("steps", ("--steps",), "maxSteps", "stop after this many optimizer steps."),
    TrainOption("batch_size", ("--batch-size",), "batchSize", "batch size."),
    TrainOption("max_seq_len", ("--max-seq-len",), "maxSeqLen", "maximum sequence length."),
    TrainOption("lora_rank", ("--lora-rank",), "loraRank", "LoRA rank."),
    TrainOption("checkpoints", ("--checkpoints",), "checkpoints", "LoRA checkpoints kept (5 with held-out rows)."),
    TrainOption("beta", ("--beta",), "beta", "DPO/KTO: closeness to the base; raise it if answers collapse."),
)
