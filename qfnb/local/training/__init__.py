"""Real LoRA fine-tuning for the local platform (Contract 4) and adapter export to llama.cpp."""
