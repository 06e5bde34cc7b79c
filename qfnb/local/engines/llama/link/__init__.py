"""The HTTP link to an OpenAI-compatible engine: requests and their streamed answers (transport), spoken to our own
engine on the event loop's sockets (loopback)."""
