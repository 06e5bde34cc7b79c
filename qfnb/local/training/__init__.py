"""Real LoRA fine-tuning for the local platform (Contract 4): the worker subprocess, its spec and data,
and adapter export to llama.cpp.
May import ``qfnb.local.engines`` (model assets) and ``qfnb.protocol``; never ``server``, ``domain`` or ``convert``."""
