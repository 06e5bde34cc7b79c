"""How bodies travel: JSON read and written by orjson where installed (fastjson) and server-sent events
encoded and decoded (sse). Imports no other room of the wires."""
