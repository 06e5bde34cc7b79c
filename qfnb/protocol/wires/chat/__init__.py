"""The chat every wire reads into: OpenAI's message shape and content parts (openai_wire), tool calling
and structured output (tools), the inference fields and every wire's documented ranges (fields, ranges,
generated), the Responses and Messages request bodies (bodies, generated) and the checks they share
(checks), one collected model turn and its item ids (turn). Imports no other room of the wires."""
