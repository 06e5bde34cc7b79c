"""JSON Schema for grammar-constrained answers: which schemas are accepted, the part the engine's
grammar enforces, its node kinds and its patterns."""
