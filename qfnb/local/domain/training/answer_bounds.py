"""What one ``answer_logprobs`` call may ask (:mod:`qfnb.local.domain.training.answer_scores`), checked before any
engine call: each answer is scored a token at a time, teacher-forced, after its conversation is rendered and
tokenized, so a call's work grows with its answers' text and, per answer, its conversation's. A 1 MiB body
was once worth about 717,000 engine calls (~300 h); the caps hold a call to minutes.
"""

from __future__ import annotations

from typing import Any

from qfnb.local.domain.state.values import BodyError

__all__ = ["MAX_ANSWER_CHARS", "MAX_CALL_ANSWER_CHARS", "MAX_CALL_PROMPT_CHARS", "check_scoring_call"]

#: characters of one answer (the engine's context holds its tokens and its conversation's)
MAX_ANSWER_CHARS = 8_000
#: characters of all the answers of one call: about 4,000 tokens, each an engine call
MAX_CALL_ANSWER_CHARS = 16_000
#: characters of conversation rendered and tokenized in one call: each answer's conversation counts once per answer
MAX_CALL_PROMPT_CHARS = 400_000


def _chars(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(len(m["content"]) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str))


def check_scoring_call(body: dict[str, Any]) -> None:
    """BodyError naming the first answer past :data:`MAX_ANSWER_CHARS`, or the call past its caps in all: its
    answers' characters, and its conversations' characters once per answer."""
    answer_chars = prompt_chars = 0
    items = body.get("items")
    for i, item in enumerate(items if isinstance(items, list) else []):
        answers = item.get("answers") if isinstance(item, dict) else None
        texts = [a for a in answers if isinstance(a, str)] if isinstance(answers, list) else []
        for j, answer in enumerate(answers if isinstance(answers, list) else []):
            if isinstance(answer, str) and len(answer) > MAX_ANSWER_CHARS:
                raise BodyError(f"items[{i}].answers[{j}]", f"is {len(answer)} characters; an answer scored here is "
                                f"at most {MAX_ANSWER_CHARS}")
        if texts:  # the item an object, its answers a list
            answer_chars += sum(len(a) for a in texts)
            prompt_chars += _chars(item.get("messages")) * len(texts)
    if answer_chars > MAX_CALL_ANSWER_CHARS:
        raise BodyError("items", f"the answers hold {answer_chars} characters in all; one call scores at most "
                        f"{MAX_CALL_ANSWER_CHARS} (each token is an engine call): send fewer items per call")
    if prompt_chars > MAX_CALL_PROMPT_CHARS:
        raise BodyError("items", f"the conversations, once per answer, hold {prompt_chars} characters; one call "
                        f"renders at most {MAX_CALL_PROMPT_CHARS}: send fewer items per call")
