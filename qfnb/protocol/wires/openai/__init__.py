"""OpenAI's wires as the local platform serves them: the chat, completions and embeddings bodies (and
Qianfan's v2 chat they extend: requests), the fine-tuning file formats (fine_tune_files) and the
graders of reinforcement fine-tuning (graders). Stands on ``qianfan`` and ``chat``."""
