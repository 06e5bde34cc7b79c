"""The HTTP client: transports, auth, retries, rate limits, decoding, responses."""
