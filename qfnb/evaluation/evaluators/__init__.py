"""What scores an answer: the local metrics (``metrics``, ``retrieval``, ``similarity``), the LLM judges
(``judge``, ``pairwise``, with their ``rubric``), people (``manual``) and the platform's evaluators
(``platform``: the config only). Imports the evaluation's shared modules (``base``, ``llm``, ``_errors``);
never stats, results or runs."""
