"""How the local platform scores given answers (qfnb's own ``/fine_tuning/answer_logprobs``): the body's ``by``
and the answer's ``scored_by``, shared by the route and its clients."""

from __future__ import annotations

__all__ = ["AUTO", "ENGINE", "FORWARD", "WAYS"]

#: in batched forward passes over the model's transformers weights and its peft adapter (all answers at once)
FORWARD = "forward"
#: on the engine that serves the model (llama-server: each answer decoded under a grammar of its tokens)
ENGINE = "engine"
#: forward where the platform has the model's transformers weights, else the engine (the default)
AUTO = "auto"
#: every ``by`` the route takes
WAYS = (FORWARD, ENGINE, AUTO)
