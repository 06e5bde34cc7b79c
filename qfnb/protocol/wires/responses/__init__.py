"""OpenAI's Responses API as data: the request's checks and its input in chat terms (request), what a
call answers with: ids, output items, the response object and its stream events (answer). Stands on
``chat``; imports neither ``openai`` nor ``anthropic``."""
