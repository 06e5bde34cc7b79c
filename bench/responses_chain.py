"""A 20-turn conversation over the Responses API against the same turns over chat completions, on
``qfnb serve`` started here with the default local chat model.

    .venv/bin/python bench/responses_chain.py [--turns 20] [--max-tokens 24]

Each turn is asked with ``client.responses.create(previous_response_id=...)``: only the new
input travels, the platform rebuilds the history from its store, and the engine keeps the
conversation's prefix on its slot. Printed per turn: the prompt's tokens (the whole history), how
many the engine took from its cache (``usage.input_tokens_details.cached_tokens``) and how many it
prefilled again. Target: at most 10 % of the history prefilled again after the first turn.

Each turn is also asked with ``client.chat.completions.create`` resending the whole history, as a
chat client does (the Responses answers as the assistant turns, so the prompts are the same); the
two alternate which asks a turn first (the second finds the whole prompt in the engine's cache).
Printed: each API's wall time per turn and their ratio (Responses' speed against chat completions';
target >= 95 %).
Say the load average you ran it at (printed at the start and the end).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_average, local_openai_client, log_to_stdout

log = logging.getLogger("bench.responses_chain")

SYSTEM = "You are a concise assistant. Answer in one short sentence."
TOPICS = ["apples", "rivers", "the moon", "bicycles", "tea", "owls", "glass", "maps", "bread", "violins", "snow",
          "copper", "tides", "paper", "bees", "clocks", "salt", "kites", "caves", "lanterns", "ferns", "dice"]


def question(turn: int) -> str:
    return f"Turn {turn + 1}: tell me one fact about {TOPICS[turn % len(TOPICS)]}."


def flush(client: object, model: str) -> None:
    """One unrelated request, so the engine slot no longer holds the conversation's prefix."""
    client.chat.completions.create(model=model, temperature=0, max_tokens=4,  # type: ignore[attr-defined]
                                   messages=[{"role": "user", "content": f"Say one word. ({time.time()})"}])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()
    log_to_stdout()
    from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL as model

    log.info("load average at start: %s", load_average())
    with local_openai_client("qfnb-bench-chain-", timeout=300) as client:
        flush(client, model)  # loads the model
        answers, prompts, cached, resp_times, out_tokens = [], [], [], [], []
        chat_times, chat_prompts, chat_out = [], [], []
        history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
        previous = None
        for turn in range(args.turns):
            history.append({"role": "user", "content": question(turn)})
            # alternate which API asks a turn first: the second finds the whole prompt cached
            for api in (("responses", "chat") if turn % 2 == 0 else ("chat", "responses")):
                started = time.perf_counter()
                if api == "responses":
                    answer = client.responses.create(model=model, instructions=SYSTEM, input=question(turn),
                                                     previous_response_id=previous, temperature=0,
                                                     max_output_tokens=args.max_tokens)
                    resp_times.append(time.perf_counter() - started)
                    previous = answer.id
                    prompts.append(answer.usage.input_tokens)
                    cached.append(answer.usage.input_tokens_details.cached_tokens)
                    out_tokens.append(answer.usage.output_tokens)
                else:
                    chat = client.chat.completions.create(model=model, messages=history, temperature=0,
                                                          max_completion_tokens=args.max_tokens)
                    chat_times.append(time.perf_counter() - started)
                    chat_prompts.append(chat.usage.prompt_tokens)
                    chat_out.append(chat.usage.completion_tokens)
                    reply = chat.choices[0].message.content or ""
            answers.append(answer.output_text)
            history.append({"role": "assistant", "content": answer.output_text})
            if reply != answer.output_text:
                log.info("turn %d: the two APIs answered differently (%r, %r)", turn + 1, answer.output_text, reply)

    log.info("%4s %8s %7s %10s %7s | %9s %8s %7s", "turn", "history", "cached", "prefilled", "share",
             "responses", "chat", "tokens")
    for turn in range(args.turns):
        share = (prompts[turn] - cached[turn]) / prompts[turn] if prompts[turn] else 0.0
        log.info("%4d %8d %7d %10d %6.1f%% | %8.2fs %7.2fs %3d/%-3d", turn + 1, prompts[turn], cached[turn],
                 prompts[turn] - cached[turn], 100 * share, resp_times[turn], chat_times[turn], out_tokens[turn],
                 chat_out[turn])
    later = range(1, args.turns)
    prefilled = sum(prompts[t] - cached[t] for t in later)
    history_tokens = sum(prompts[t] for t in later)
    log.info("after turn 1: %d of %d history tokens prefilled again = %.1f %% (target <= 10 %%)", prefilled,
             history_tokens, 100 * prefilled / max(1, history_tokens))
    same = all(a == b for a, b in zip(prompts, chat_prompts, strict=True))
    log.info("same prompts on both APIs: %s (chat prompt tokens %s)", same, chat_prompts[-1])
    log.info("wall time: Responses %.2f s, chat completions %.2f s; Responses speed = %.1f %% of chat completions' "
             "(target >= 95 %%)", sum(resp_times), sum(chat_times), 100 * sum(chat_times) / sum(resp_times))
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()
