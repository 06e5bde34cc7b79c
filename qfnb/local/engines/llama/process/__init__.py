"""The supervised llama-server processes: how one is started (command: the binary, its flags; portable: the
xllamacpp wheel's server), run and restarted (server), tied to the platform's life (spawn), and what a killed
platform left running (leftovers)."""
