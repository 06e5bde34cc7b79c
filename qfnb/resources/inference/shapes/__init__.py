"""The pure shapes of an inference call (no I/O): a v1 call in the v2 API's bodies and answers (v2), an
answer added up from a stream's chunks and ``auto_concat_truncate``'s rounds (accumulator), and the
instructions and answer of function calling on ``ERNIE-Functions-8K`` (function_call)."""
