"""What wraps a request: credential checks, the daemon's guards, replay refusal, idempotent calls,
heartbeats, metrics and OpenAI's error object."""
