"""Engines on transformers / torch: the chat engine for tiny and tuned models (``chat``), sentence
embeddings (``embed``), text-to-image on diffusers (``text2image``), and quiet model loading.
Imports the engine face (``ask``, ``base``) and ``qfnb.protocol``; never ``llama`` or ``store``."""
