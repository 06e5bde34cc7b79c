"""llama.cpp serving: the supervised ``llama-server`` processes (``server``, ``spawn``, ``leftovers``), chat over
an OpenAI-compatible engine (``openai_http``) with its prompts, schemas as grammars and tool calls, reranking.
Imports the engine face (``ask``, ``base``, ``gate``, ``lanes``) and ``qfnb.protocol``; never ``hf`` or ``store``."""
