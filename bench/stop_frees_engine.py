"""How soon the engine is free for the next prompt after the caller stops a keyed call.

Usage: ``python bench/stop_frees_engine.py [--words 40] [--word 0.1] [--rounds 2]``. The local
platform's app is served on 127.0.0.1 with a one-slot engine double that says a word each
``--word`` s. Each round streams a ``--words``-word answer, closes the stream after three chunks
(what the notebook's Interrupt does), then asks a one-word prompt and times its answer from the
close. Withdrawn: the client of the embedded platform sends ``DELETE /qfnb/calls/{key}`` on the
close. Baseline, measured in the same run: the same client without that stage (the platform keeps
the keyed work for a retry, so the next prompt waits for the stopped answer's end). Printed: the
seconds from the close to the next answer, and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from _common import load_average, log_to_stdout
from platform_doubles import FakeChat, FakeDelta, FakeRegistry

from qfnb.local.engines.ask import Sampling
from qfnb.resources.inference.chat import ChatCompletion
from tests.fakes.local_platform import served_platform

log = logging.getLogger("bench.stop_frees_engine")


def _registry(word_s: float) -> FakeRegistry:
    slot = threading.Lock()  # one generation at a time, as a one-slot engine on a small machine

    class Paced(FakeChat):
        def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
            with slot:
                for delta in super()._words(text, sampling):
                    time.sleep(word_s)
                    yield delta

    class Registry(FakeRegistry):
        def make_chat(self, tag: str) -> FakeChat:
            return Paced(tag)

    return Registry()


def run(words: int, word_s: float, rounds: int, *, withdraw: bool) -> float:
    """Seconds from a stream's close to the next prompt's answer, the mean of ``rounds``."""
    prompt = " ".join(f"w{i}" for i in range(words))
    with tempfile.TemporaryDirectory() as tmp, served_platform(Path(tmp) / "platform", registry=_registry(word_s),
                                                                heartbeat=0) as served:
        config = dataclasses.replace(served.config(), embedded=withdraw)  # the stage is the embedded client's
        chat = ChatCompletion(model="Tiny-Chat", config=config)
        waits = []
        for i in range(rounds):
            stream = chat.do(messages=[{"role": "user", "content": f"{prompt} {i}"}], stream=True)
            for _ in range(3):
                next(stream)
            closed = time.perf_counter()
            stream.close()
            answer = chat.do(messages=[{"role": "user", "content": f"next{i}"}])
            assert answer.body["result"] == f"tiny-chat: next{i}"
            waits.append(time.perf_counter() - closed)
        return sum(waits) / len(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, default=40, help="the stopped answer's words")
    parser.add_argument("--word", type=float, default=0.1, help="the engine's seconds per word")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    log_to_stdout()
    log.info("load average at start: %s", load_average())
    kept = run(args.words, args.word, args.rounds, withdraw=False)
    withdrawn = run(args.words, args.word, args.rounds, withdraw=True)
    log.info("baseline (kept for a retry): %.2f s from the close to the next answer", kept)
    log.info("withdrawn (DELETE on close): %.2f s from the close to the next answer", withdrawn)
    log.info("ratio withdrawn/baseline: %.2f", withdrawn / kept)
    log.info("load average at end: %s", load_average())


if __name__ == "__main__":
    main()
