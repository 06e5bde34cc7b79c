"""Does a big schema slow other users? A small chat's time per token alone and beside schema requests.

    .venv/bin/python bench/schema_isolation.py [--tokens 48] [--repeats 3]

One platform (``qfnb serve``, its engine's default slots), one run. The small chat streams
``--tokens`` tokens at temperature 0; its time per token is the time between its first and last
streamed token over the tokens between them (prefill and queueing left out), the median of
``--repeats`` runs. Beside: another client sends schema requests one after another for the whole
of the small chat. The schemas are the probe's 20,000-value enum (340 KB: refused by the caps with
a 400 naming MAX_SCHEMA_ENUM_VALUES before the engine sees it) and the largest enum the caps admit
(MAX_SCHEMA_ENUM_VALUES values, answered under its grammar; each answer validated), the probe's
nested-quantifier pattern ``^([a-z]{0,K}){0,K}$`` for each ``--pattern-k`` (the sampler explores
the ways to split a word: refused by the schema checks by name, else answered, else cut by the
engine watchdog with an error naming QFNB_ENGINE_STALL_SECONDS or QFNB_ENGINE_REQUEST_SECONDS), and,
as the baseline, the same requests with no schema (what any other user's short requests cost a stream
that shares the engine and the two cores). Printed per case: the small chat's time per token alone
and beside, their ratio (target <= 1.5), and what the requests beside got (status, count, time);
last, the worst ratio beside a schema the platform accepted (one whose requests were answered).
Alone is measured again before each case, in the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_average, local_openai_client, log_to_stdout

log = logging.getLogger("bench.schema_isolation")

SMALL = [{"role": "user", "content": "Count from 1 to 60 in words, separated by commas."}]
PICK = [{"role": "user", "content": "Pick any one of the allowed values."}]


def enum_format(n: int) -> dict[str, Any]:
    """A response format whose one field is an enum of ``n`` 14-character values (the probe's shape)."""
    values = [f"value_{i:08d}" for i in range(n)]
    schema = {"type": "object", "properties": {"v": {"type": "string", "enum": values}}, "required": ["v"]}
    return {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}}


def pattern_format(k: int) -> dict[str, Any]:
    """A response format whose one field must match the probe's ``^([a-z]{0,k}){0,k}$``."""
    pattern = f"^([a-z]{{0,{k}}}){{0,{k}}}$"
    schema = {"type": "object", "properties": {"w": {"type": "string", "pattern": pattern}}, "required": ["w"]}
    return {"type": "json_schema", "json_schema": {"name": "word", "schema": schema}}


def per_token(client: Any, model: str, tokens: int) -> float:
    """Seconds per streamed token of the small chat, first token to last."""
    stamps = []
    stream = client.chat.completions.create(model=model, messages=SMALL, temperature=0, max_tokens=tokens,
                                            stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
    if len(stamps) < 3:
        raise RuntimeError(f"the small chat streamed only {len(stamps)} tokens")
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


class Beside:
    """Schema requests sent one after another on their own thread until stopped."""

    def __init__(self, client: Any, model: str, fmt: dict[str, Any] | None) -> None:
        self.client, self.model, self.fmt = client, model, fmt
        self.outcomes: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import jsonschema
        import openai

        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                shape = {"response_format": self.fmt} if self.fmt is not None else {}
                answer = self.client.chat.completions.create(model=self.model, messages=PICK, temperature=0.7,
                                                             max_tokens=24, **shape)
                if self.fmt is None:
                    outcome = "200"
                else:
                    value = json.loads(answer.choices[0].message.content or "")
                    valid = jsonschema.Draft202012Validator(self.fmt["json_schema"]["schema"]).is_valid(value)
                    outcome = "200" if valid else "200 but invalid"
            except openai.APIStatusError as exc:
                param = exc.body.get("param") if isinstance(exc.body, dict) else ""
                outcome = f"{exc.status_code} {param}"
            self.outcomes.append((outcome, time.perf_counter() - t0))
            if not outcome.startswith("200"):
                time.sleep(0.05)  # a refusal comes back at once: do not turn the bench into a flood

    def __enter__(self) -> Beside:
        self._thread.start()
        time.sleep(1.0)  # the first schema request is in the engine (or refused) before the small chat starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pattern-k", default="4,12", help="K of the nested patterns to try, comma-separated")
    args = parser.parse_args()
    log_to_stdout()
    from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL as model
    from qfnb.protocol.limits import MAX_SCHEMA_ENUM_VALUES

    log.info("load average at start: %s", load_average())
    probe = enum_format(20_000)
    log.info("the probe's enum: %d values, %d bytes of JSON", 20_000, len(json.dumps(probe)))
    cases: list[tuple[str, dict[str, Any] | None]] = [
        ("the same asks, no schema", None), ("probe's 20,000-value enum", probe),
        (f"{MAX_SCHEMA_ENUM_VALUES:,}-value enum (the cap)", enum_format(MAX_SCHEMA_ENUM_VALUES)),
        *((f"pattern ^([a-z]{{0,{k}}}){{0,{k}}}$", pattern_format(k))
          for k in (int(x) for x in args.pattern_k.split(",") if x))]
    rows = []
    with local_openai_client("qfnb-bench-schema-", timeout=600) as client:
        per_token(client, model, 8)  # loads the model
        for label, fmt in cases:
            alone = statistics.median(per_token(client, model, args.tokens) for _ in range(args.repeats))
            with Beside(client, model, fmt) as beside:
                near = statistics.median(per_token(client, model, args.tokens) for _ in range(args.repeats))
            outcomes = sorted({o for o, _ in beside.outcomes})
            took = statistics.median(t for _, t in beside.outcomes) if beside.outcomes else float("nan")
            rows.append((label, alone, near, outcomes, len(beside.outcomes), took))

    log.info("%-30s %12s %12s %7s   %s", "beside", "alone ms/tok", "beside ms/tok", "ratio", "schema requests")
    for label, alone, near, outcomes, count, took in rows:
        log.info("%-30s %12.1f %12.1f %6.2fx   %d x %s, median %.2f s each", label, 1000 * alone, 1000 * near,
                 near / alone, count, "/".join(outcomes), took)
    worst = max(near / alone for _, alone, near, *_ in rows[1:])
    accepted = [near / alone for _, alone, near, outcomes, *_ in rows[1:] if any(o.startswith("200") for o in outcomes)]
    log.info("worst ratio beside a schema %.2fx; beside the worst schema accepted (answered) %s (target <= 1.5x); "
             "beside the same asks with no schema %.2fx", worst,
             f"{max(accepted):.2f}x" if accepted else "none accepted", rows[0][2] / rows[0][1])
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()
