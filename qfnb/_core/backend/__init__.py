"""Which platform the client talks to: discovery and start of the local daemon."""
