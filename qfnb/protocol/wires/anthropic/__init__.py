"""Anthropic's Messages API as data (messages): the request's checks and its OpenAI chat equivalent, the
message object, stream events and error shape it answers with. Stands on ``chat``; imports neither
``openai`` nor ``responses``."""
