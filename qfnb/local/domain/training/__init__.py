"""Fine-tunes: the console's runs (fine_tunes), OpenAI's fine-tuning jobs, the jobs supervisor, the machine's caps,
the validation split, RFT's client rewards and answer scoring."""
