"""The route tables: each wire's routes (v1 inference, OpenAI, Responses, Messages, console, v2, batch,
BOS, models, tokens, rerank) and the daemon's control routes."""
