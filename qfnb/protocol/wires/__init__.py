"""The wires: every request and answer body qfnb speaks, in one room per wire family (layers: openai |
responses | anthropic -> qianfan -> chat -> codec | local): Qianfan's v1/v2 inference, routes and
model catalog (qianfan), OpenAI's chat, completions, embeddings and fine-tuning bodies (openai), OpenAI's
Responses (responses) and Anthropic's Messages (anthropic), on the chat every wire reads into (chat);
the encodings (codec: JSON, SSE) and the local platform's own routes (local) stand apart."""
