"""The platform's objects: the v1 console and v2 (its data sets apart), OpenAI's fine-tuning jobs, batch inference and
the local BOS."""
