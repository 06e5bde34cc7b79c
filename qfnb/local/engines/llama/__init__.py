"""llama.cpp serving: the supervised ``llama-server`` processes (``server``, ``spawn``, ``leftovers``), the
engine of their models (``engine``: one admission step, the chat layer a strategy) with its prompts, schemas
as grammars and tool calls, reranking; and an external OpenAI-compatible engine, passed through (``external``).
Imports the engine face (``ask``, ``base``, ``gate``, ``lanes``) and ``qfnb.protocol``; never ``hf`` or ``store``."""
