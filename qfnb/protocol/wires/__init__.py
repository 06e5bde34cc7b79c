"""The wires: every request and answer body qfnb speaks (Qianfan v1/v2, OpenAI's chat and Responses,
Anthropic's Messages, batches), their checks, routes and model catalog, signing and SSE."""
