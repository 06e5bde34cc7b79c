"""The model calls on every wire: v1 inference and the OAuth token, OpenAI (chat, stored chats, models), Responses,
Messages, rerank and code completion for editors (complete)."""
