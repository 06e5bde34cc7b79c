"""Fine-tuned LoRA adapters for llama.cpp: a peft adapter converted to a LoRA GGUF (``lora_gguf``)
and a tuned model exported as portable GGUF (``export``).
Imports ``store`` (weights, GGUF headers), ``llama`` (the binaries) and ``qfnb.protocol``."""
