"""Real models on llama.cpp's own server (marked ``real_model``): Qwen chat, Gemma completion, a
LoRA adapter served from the base model's engine, crash restart, idle stop, an external engine,
and cancellation freeing a slot."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_asks import chat_ask, text_ask
from platform_helpers import spawn_reporting, wait_up

from qfnb.local.engines import DEFAULT_CHAT, GEMMA
from qfnb.local.engines.api import generate_blocking
from qfnb.local.engines.gate import run_blocking
from qfnb.local.engines.llama.link.loopback import EngineReply
from qfnb.local.engines.llama.process.command import find_binary, reported_port
from qfnb.local.engines.registry import EngineOptions, EngineRegistry, parse_external
from qfnb.local.engines.store import assets
from qfnb.local.training.demo import DEMO_FILE

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
ROOT = Path(__file__).resolve().parents[2]
GREEDY = {"temperature": 0.0001, "max_tokens": 24}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def chat(engine: Any, messages: list[dict[str, str]] = QUESTION) -> list[Any]:
    return generate_blocking(engine, chat_ask(messages, **GREEDY))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRegistry]:
    reg = EngineRegistry(tmp_path_factory.mktemp("llama"), options=EngineOptions(slots=4, idle_seconds=600))
    yield reg
    reg.close()


def test_qwen_answers_through_llama_server(registry: EngineRegistry) -> None:
    deltas = chat(registry.chat("qwen2_5_coder_0_5b_instruct"))
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert deltas[-1].finish_reason == "normal" and deltas[-1].prompt_tokens > 10
    assert deltas[-1].completion_tokens >= len([d for d in deltas if d.text]) - 1
    assert registry.resolve("chat", DEFAULT_CHAT).kind == "llama.cpp"
    (row,) = [r for r in registry.engine_states() if r["model"] == DEFAULT_CHAT]
    assert row["state"] == "ready" and row["slots"] == 4 and row["pid"]
    log = registry.data_dir / "logs" / "engine-qwen2_5_coder_0_5b_instruct.log"
    assert log.is_file() and oct(log.stat().st_mode & 0o777) == "0o600"


def test_an_answer_is_scored_as_the_whole_reply_its_end_of_sequence_included(registry: EngineRegistry) -> None:
    """Qwen's template names no stop string: the reply ends with its end-of-sequence token (``/props``'
    ``eos_token``), scored after the answer as DPO training labels it, so "Paris." then stopping is not the
    start of "Paris. Aye!". An empty answer is that one token: how likely the model is to stop at once."""
    engine = registry.chat("qwen2_5_coder_0_5b_instruct")
    at_once, ended = asyncio.run(engine.answer_logprob(QUESTION, ""))
    assert ended == 1 and at_once < 0
    short, short_n = asyncio.run(engine.answer_logprob(QUESTION, "Paris."))
    longer, longer_n = asyncio.run(engine.answer_logprob(QUESTION, "Paris. Aye!"))
    assert 2 <= short_n < longer_n and short < 0 and longer < 0


def test_a_short_prompt_sent_as_text_is_the_tokens_count_tokens_counts(registry: EngineRegistry) -> None:
    """A short chat (rendered under 255 bytes) and a short text go to the engine untokenized: the engine's
    own tokenization of them is /tokenize's (special tokens parsed, BOS added), so the usage is the count."""
    engine = registry.chat("qwen2_5_coder_0_5b_instruct")
    asks: list[Any] = [chat_ask([{"role": "user", "content": "Hi, 你好!"}], **GREEDY),
                       text_ask("<|im_start|>user\nName a prime.<|im_end|>\n<|im_start|>assistant\n", **GREEDY)]
    for ask in asks:
        deltas = generate_blocking(engine, ask)
        counted = asyncio.run(engine.count_tokens(ask))
        assert deltas[-1].prompt_tokens == counted > 5, (deltas[-1].prompt_tokens, counted)


def test_a_paced_stream_hands_on_its_first_token_alone_then_several_a_piece_the_same_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams from our own engine go on at the platform's pace (``QFNB_STREAM_INTERVAL_MS``): the first
    token at once, then about three tokens a piece, which the engine holds and sends as one event (the
    build's scripts/llama_server_stream_pace.patch), and the greedy text is the one an unpaced stream reads.
    (A limit of 300 ms here: three tokens a piece on any machine decoding 10 tok/s or more.)"""
    reads = {0.3: 0, 0.0: 0}  # the engine link's socket reads, by the stream's interval
    data_received = EngineReply.data_received
    running = [0.0]

    def counted(self: EngineReply, data: bytes) -> None:
        reads[running[0]] += 1
        data_received(self, data)

    monkeypatch.setattr(EngineReply, "data_received", counted)
    ask = {"temperature": 0.0001, "max_tokens": 64}
    story = [{"role": "user", "content": "Write a Python function that reverses a linked list, with a docstring."}]
    answers = {}
    for interval in (0.3, 0.0):
        running[0] = interval
        reg = EngineRegistry(tmp_path / f"pace-{interval}", options=EngineOptions(slots=2, stream_interval=interval))
        try:
            answers[interval] = generate_blocking(reg.chat(DEFAULT_CHAT), chat_ask(story, **ask))
            (row,) = [r for r in reg.engine_states() if r["model"] == DEFAULT_CHAT]
            assert row["pacesStreams"], ("llama-server built without scripts/llama_server_stream_pace.patch? "
                                         "Run bash scripts/bootstrap.sh")
        finally:
            reg.close()
    paced, unpaced = answers[0.3], answers[0.0]
    assert "".join(d.text for d in paced) == "".join(d.text for d in unpaced)
    assert paced[-1].completion_tokens == unpaced[-1].completion_tokens == 64
    texts = [d for d in paced if d.text]
    assert texts[0].completion_tokens == 1  # the first token went on by itself
    assert len(texts) <= 32 and len([d for d in unpaced if d.text]) == 64  # 64 tokens, in fewer pieces
    assert reads[0.3] <= 40 < 64 <= reads[0.0], reads  # and the engine's events were read together


def test_four_chats_at_once_are_batched_by_one_engine(registry: EngineRegistry) -> None:
    import asyncio

    engine = registry.chat("qwen2_5_coder_0_5b_instruct")
    questions = ["What is the capital of France?", "What is the capital of Japan?",
                 "What is the capital of Italy?", "What is the capital of Germany?"]

    async def all_at_once() -> list[str]:
        async def one(q: str) -> str:
            return "".join([d.text async for d in engine.generate(chat_ask([{"role": "user", "content": q}],
                                                                           **GREEDY))])
        return list(await asyncio.gather(*(one(q) for q in questions)))

    answers = run_blocking(all_at_once)
    for city, answer in zip(["Paris", "Tokyo", "Rome", "Berlin"], answers, strict=True):
        assert city in answer, answers


def test_a_seed_repeats_alone_and_beside_other_users_generations(registry: EngineRegistry) -> None:
    """On the main engine, batched with the others: the build computes a batch holding a seeded request
    with batch-invariant kernels (scripts/llama_server_seed_invariant.patch). Alone, beside one other
    stream and beside three (llama.cpp's own kernels take other paths for 1, 2 to 7, and 8 or more rows)."""
    import asyncio

    engine = registry.chat(DEFAULT_CHAT)
    seeded = chat_ask([{"role": "user", "content": "Invent a name for a new planet and describe it."}],
                      temperature=1.0, max_tokens=24, seed=1234)
    other = chat_ask([{"role": "user", "content": "Write a long story about a lighthouse."}], temperature=0.9,
                     max_tokens=40)

    async def answer(ask: Any, started: asyncio.Event | None = None) -> str:
        pieces = []
        async for delta in engine.generate(ask):
            pieces.append(delta.text)
            if started is not None:
                started.set()
        return "".join(pieces)

    async def beside(seeded_first: bool) -> str:
        first, second = (seeded, other) if seeded_first else (other, seeded)
        streaming = asyncio.Event()
        begun = asyncio.create_task(answer(first, streaming))
        await streaming.wait()  # the first is generating when the second is sent
        texts = await asyncio.gather(begun, answer(second))
        return texts[0] if seeded_first else texts[1]

    async def among_three() -> str:
        streaming = asyncio.Event()
        others = [asyncio.create_task(answer(other, streaming)) for _ in range(3)]
        await streaming.wait()
        text = await answer(seeded)
        await asyncio.gather(*others)
        return text

    alone = [run_blocking(lambda: answer(seeded)) for _ in range(2)]
    near = [run_blocking(lambda: beside(False)), run_blocking(lambda: beside(True)), run_blocking(among_three)]
    assert len(set(alone + near)) == 1 and alone[0].strip(), (alone, near)
    # on the one engine process, in the batch the other users' chats had
    (row,) = [r for r in registry.engine_states() if r["model"] == DEFAULT_CHAT]
    assert row["seedsInvariant"] and row["pid"], \
        ("llama-server built without scripts/llama_server_seed_invariant.patch? scripts/bootstrap.sh rebuilds it", row)


USERS = {"type": "array", "minItems": 3, "maxItems": 3, "items": {
    "type": "object", "additionalProperties": False, "required": ["id", "name", "role"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                   "role": {"type": "string", "enum": ["admin", "editor", "viewer"]}}}}
USERS_PROMPT = [{"role": "user", "content": "Make up three users of a wiki as JSON: id, name, role."}]


def test_a_schema_answer_drafts_what_its_grammar_forces_and_reads_the_same_without(
        registry: EngineRegistry, tmp_path: Path) -> None:
    """The build writes JSON under a schema on one line, as ``json.dumps`` does, and drafts the text the
    grammar forces next (punctuation, key names, an enum's rest: scripts/llama_server_grammar_draft.patch).
    Through the platform the answer is drafted and counted; on two engines of the same build, with and
    without the drafts, the greedy answer is byte for byte the same."""
    from qfnb.local.engines.call_state import calls
    from qfnb.local.engines.llama.process.command import JSON_ONE_LINE_ENV, SPEC_GRAMMAR_ENV, ServerConfig

    before = calls.drafts().get(DEFAULT_CHAT, (0, 0))
    ask = replace(chat_ask(USERS_PROMPT, temperature=0.0001, max_tokens=80), schema=USERS)
    text = "".join(d.text for d in generate_blocking(registry.chat(DEFAULT_CHAT), ask))
    assert text == json.dumps(json.loads(text)), text  # one line, a space after each ':' and ','
    drafted, accepted = (a - b for a, b in zip(calls.drafts()[DEFAULT_CHAT], before, strict=True))
    assert accepted >= 20 and drafted - accepted <= 4, (drafted, accepted, text)
    (row,) = [r for r in registry.engine_states() if r["model"] == DEFAULT_CHAT]
    assert row["grammarDrafts"], ("llama-server built without scripts/llama_server_grammar_draft.patch? "
                                  "scripts/bootstrap.sh rebuilds it", row)

    answers = []
    for switches in ({JSON_ONE_LINE_ENV: "1"}, {JSON_ONE_LINE_ENV: "1", SPEC_GRAMMAR_ENV: "1"}):
        config = ServerConfig(name="bare", gguf=assets.gguf_path(DEFAULT_CHAT), log_dir=tmp_path, slots=1)
        proc, port = spawn_reporting(config.argv(find_binary(), ()), tmp_path / f"bare-{len(answers)}.log",
                                     reported_port, env={**os.environ, **switches})
        try:
            url = f"http://127.0.0.1:{port}"
            wait_up(url + "/health", proc)
            reply = httpx.post(url + "/v1/chat/completions", timeout=300, json={
                "messages": USERS_PROMPT, "temperature": 0.0, "max_tokens": 80, "response_format": {
                    "type": "json_schema", "json_schema": {"name": "users", "schema": USERS}}}).json()
            answers.append((reply["choices"][0]["message"]["content"], reply["timings"].get("draft_n_accepted", 0)))
        finally:
            proc.terminate()
            proc.wait(10)
    (plain, none), (drafted_text, taken) = answers
    assert drafted_text == plain and none == 0 and taken >= 20, answers


@pytest.mark.parametrize("cut", ['[{"id": 1, "name": "Al',
                                 '[{"id": 1, "name": "Ann", "role": "admin"}, {"id": 2, "name": "'])
def test_the_rest_of_a_cut_answer_is_written_by_the_engine_under_the_rest_of_its_schema(
        registry: EngineRegistry, cut: str) -> None:
    """What a looping stream's rest is written under (:func:`.continuation.rest_grammar`), as the engine
    itself parses and enforces it: the cut text and the rest are one value under the whole schema (the
    string closed where it was cut, the array's count, the role's enum, written as a trie pattern)."""
    import jsonschema

    async def collect(stream: Any) -> list[Any]:
        return [d async for d in stream]

    engine = registry.chat(DEFAULT_CHAT)
    ask = replace(chat_ask(USERS_PROMPT, temperature=0.0001, max_tokens=120), schema=USERS)
    rest = engine.resume(ask, cut)
    assert rest is not None
    deltas = run_blocking(lambda: collect(rest))
    answer = json.loads(cut + "".join(d.text for d in deltas))
    jsonschema.validate(answer, USERS)
    assert deltas[-1].finish_reason == "normal" and deltas[-1].completion_tokens > 0


@pytest.mark.slow  # the default suite covers the same path on a slow-engine double (test_engine_watchdog.py)
def test_a_grammar_that_holds_the_engine_is_cancelled_and_another_users_chat_answers(tmp_path: Path) -> None:
    import asyncio

    from qfnb.local.engines.ask import ChatAsk, Sampling
    from qfnb.local.engines.llama.watchdog import EngineStalled

    reg = EngineRegistry(tmp_path, options=EngineOptions(slots=2, stall_seconds=20, request_seconds=300))
    engine = reg.chat(DEFAULT_CHAT)
    # the probe's pattern: the sampler explores the grammar's ways to split a word, without end
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^([a-z]{0,40}){0,40}$"}},
              "required": ["s"]}
    word = "abcdefghijklmnopqrstuvwxyz" * 3
    culprit = ChatAsk(model="", messages=({"role": "user", "content": f'Answer exactly {{"s": "{word}"}}'},),
                      sampling=Sampling(max_tokens=60, temperature=0.0), schema=schema)

    async def answer(ask: Any) -> Any:
        try:
            return "".join([d.text async for d in engine.generate(ask)])
        except EngineStalled as exc:
            return exc

    async def both() -> list[Any]:
        held = asyncio.create_task(answer(culprit))
        await asyncio.sleep(1.0)
        return [await held, await answer(chat_ask(QUESTION, **GREEDY))]

    try:
        chat(engine)  # the engine is up
        begun = time.monotonic()
        held, other = run_blocking(both)
        assert isinstance(held, EngineStalled) and "QFNB_ENGINE_STALL_SECONDS" in str(held), held
        assert isinstance(other, str) and "Paris" in other, other
        assert time.monotonic() - begun < 240
        server = reg._servers[DEFAULT_CHAT]
        lease = server.acquire()  # cancelled for real: no slot goes on (restarted, or it obeyed)
        server.release(lease)
        slots = httpx.get(lease.url + "/slots", headers={"Authorization": f"Bearer {lease.key}"}, timeout=30).json()
        assert not any(s.get("is_processing") for s in slots) and server.starts in (1, 2)
    finally:
        reg.close()


def _prompt_reads(log: Path, start: int, want: int, wait_s: float = 30.0) -> list[int]:
    """The prompt tokens each request re-read, from the engine's log. llama-server writes a slot's
    timings after it has sent the last chunk, so under load the log trails the answers a little."""
    deadline = time.monotonic() + wait_s
    while True:
        text = log.read_bytes()[start:].decode(errors="replace")
        read = [int(n) for n in re.findall(r"prompt eval time = .*? / +(\d+) tokens", text)]
        if len(read) >= want or time.monotonic() > deadline:
            return read
        time.sleep(0.2)


def _settled_size(log: Path, quiet_s: float = 1.0, wait_s: float = 15.0) -> int:
    """The log's size once it has not grown for ``quiet_s``: an earlier test's last request writes its
    timings a little after its answer (a 1-token prompt read landed among this test's 8 once)."""
    size, since, deadline = -1, time.monotonic(), time.monotonic() + wait_s
    while time.monotonic() < deadline:
        now = log.stat().st_size if log.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.1)
    return size


def test_pinned_slots_reread_only_what_a_prompt_does_not_share_with_their_last(registry: EngineRegistry) -> None:
    """Each request is pinned to an engine slot (``id_slot``). With llama-server's host-RAM prompt
    cache on (its default), requests rotating over the slots re-read their whole prompts; the
    engine runs without it, so each slot keeps the prefix its next prompt shares."""
    import asyncio

    engine = registry.chat(DEFAULT_CHAT)
    log = registry.data_dir / "logs" / "engine-qwen2_5_coder_0_5b_instruct.log"
    start = _settled_size(log)
    topics = ["binary search trees", "HTTP caching", "SQL joins", "unit testing",
              "TCP congestion", "regular expressions", "Python generators", "garbage collection"]

    async def wave(names: list[str]) -> list[int]:
        async def one(topic: str) -> int:
            ask = [{"role": "user", "content": f"Explain {topic} to a new engineer in a few paragraphs."}]
            deltas = [d async for d in engine.generate(chat_ask(ask, temperature=0.0001, max_tokens=48))]
            return deltas[-1].prompt_tokens
        return list(await asyncio.gather(*(one(t) for t in names)))

    prompt_tokens = run_blocking(lambda: wave(topics[:4])) + run_blocking(lambda: wave(topics[4:]))
    read = _prompt_reads(log, start, want=8)
    assert len(read) == 8, read
    # the chat template's system turn and "Explain " (about 26 tokens) are kept in each slot
    assert max(read[4:]) < min(prompt_tokens) - 15, (read, prompt_tokens)


def test_gemma_base_completes_a_qa_prompt(registry: EngineRegistry) -> None:
    engine = registry.chat("gemma_3_270m")

    async def go() -> list[Any]:
        return [d async for d in engine.generate(text_ask("Question: What is the capital of France?\nAnswer:",
                                                          stop=["\n"], **GREEDY))]

    deltas = run_blocking(go)
    assert "Paris" in "".join(d.text for d in deltas)


@pytest.mark.slow
def test_a_lora_job_is_served_from_the_base_models_engine(registry: EngineRegistry, tmp_path: Path) -> None:
    spec = {"base_model": GEMMA, "train_file": str(DEMO_FILE), "seed": 1,
            "hyper": {"epoch": 1, "learningRate": 1e-3, "batchSize": 2, "maxSeqLen": 64, "loraRank": 8,
                      "loraAlpha": 16, "loraDropout": 0.0, "maxSteps": 2}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", "qfnb.local.training.process.worker", str(tmp_path)],
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600, check=False)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "Done", (result, proc.stdout[-2000:])
    records = [json.loads(x) for x in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert len([r for r in records if "loss" in r]) == 2

    served = registry.register_adapter("real_tuned", GEMMA, Path(result["adapter_dir"]))
    assert served.kind == "llama.cpp" and (Path(result["adapter_dir"]) / "adapter.gguf").is_file()
    tuned = chat(registry.chat("real_tuned"), [{"role": "user", "content": "What is the capital of Zorvia?"}])
    assert tuned[-1].completion_tokens > 0
    base = chat(registry.chat("gemma_3_270m"), [{"role": "user", "content": "What is the capital of Zorvia?"}])
    assert base[-1].completion_tokens > 0
    gemma_rows = [r for r in registry.engine_states() if r["model"] == GEMMA]
    assert len(gemma_rows) == 1 and gemma_rows[0]["adapters"] == 1  # one process, the adapter inside it


def test_a_crashed_engine_restarts_and_an_idle_one_stops(tmp_path: Path) -> None:
    reg = EngineRegistry(tmp_path, options=EngineOptions(slots=2, idle_seconds=3))
    try:
        engine = reg.chat("qwen2_5_coder_0_5b_instruct")
        assert "Paris" in "".join(d.text for d in chat(engine))
        (row,) = reg.engine_states()
        first = row["pid"]
        os.kill(first, signal.SIGKILL)  # the engine process this registry started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (row,) = reg.engine_states()
            if row["pid"] not in (None, first) and row["state"] == "ready":
                break
            time.sleep(0.2)
        assert row["pid"] not in (None, first), row  # restarted by the watchdog
        assert "Paris" in "".join(d.text for d in chat(engine))
        deadline = time.monotonic() + 30
        while reg.engine_states()[0]["state"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reg.engine_states()[0]["state"] == "stopped" and reg.engine_states()[0]["pid"] is None
        assert "Paris" in "".join(d.text for d in chat(engine))  # and starts again on the next call
    finally:
        reg.close()


@pytest.fixture()
def external_llama_server(tmp_path: Path) -> Iterator[str]:
    """A second llama-server, started here as an 'external' engine (as a user's GPU box would run one)."""
    binary = find_binary()
    assert binary is not None
    # --port 0: it binds a free port itself and logs it
    proc, port = spawn_reporting([str(binary), "--model", str(assets.gguf_path(DEFAULT_CHAT)), "--host", "127.0.0.1",
                                  "--port", "0", "--parallel", "2", "--threads", "2", "--no-webui"],
                                 tmp_path / "external.log", reported_port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/health", proc)
        yield url + "/v1"
    finally:
        proc.terminate()
        proc.wait(20)


def test_an_external_openai_compatible_engine_serves_a_model_name(tmp_path: Path, external_llama_server: str) -> None:
    external = parse_external({"Remote-Qwen": external_llama_server})
    reg = EngineRegistry(tmp_path, options=EngineOptions(external=external))
    try:
        served = reg.resolve("chat", "Remote-Qwen")
        assert served.kind == "openai"
        assert "Paris" in "".join(d.text for d in chat(reg.chat("Remote-Qwen")))
        assert not any(r["model"] == DEFAULT_CHAT and r["pid"] for r in reg.engine_states())  # nothing local ran
    finally:
        reg.close()


def test_a_client_that_gives_up_frees_its_slot_before_its_answer_could_end(tmp_path: Path) -> None:
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "tests"))
    from fakes.cloud import serve

    from qfnb.local.server.app import create_app
    from qfnb.local.settings import Credentials, Settings
    from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

    creds = Credentials.generate()
    registry = EngineRegistry(tmp_path, options=EngineOptions(slots=2))
    app = create_app(Settings(data_dir=tmp_path, credentials=creds), registry)
    with serve(app, lifespan="on") as base:
        tok = httpx.post(base + "/oauth/2.0/token", params={"grant_type": "client_credentials",
                                                            "client_id": creds.api_key,
                                                            "client_secret": creds.secret_key}).json()["access_token"]
        url = base + MODEL_API_PREFIX + "/chat/qwen2_5_coder_0_5b_instruct"
        essay = [{"role": "user", "content": "Write a very long essay about the history of computing."}]
        assert httpx.post(url, params={"access_token": tok}, json={"messages": QUESTION}, timeout=120).is_success
        begun = time.monotonic()  # this machine's decode speed, now (the engine is up)
        timed = httpx.post(url, params={"access_token": tok}, timeout=120,
                           json={"messages": QUESTION, "max_output_tokens": 64, "temperature": 1e-6})
        rate = timed.json()["usage"]["completion_tokens"] / (time.monotonic() - begun)
        server = registry._servers[DEFAULT_CHAT]
        lease = server.acquire()
        server.release(lease)

        def busy_slots() -> int:
            slots = httpx.get(lease.url + "/slots", headers={"Authorization": f"Bearer {lease.key}"}).json()
            return sum(1 for s in slots if s.get("is_processing"))

        # a caller that gives up on a 4000-token answer (greedy: a sampled answer can end early)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url, params={"access_token": tok}, timeout=2.0,
                       json={"messages": essay, "max_output_tokens": 4000, "temperature": 1e-6})
        gave_up = time.monotonic()
        while busy_slots() and time.monotonic() - gave_up < 120:  # a liveness cap, not a bound
            time.sleep(0.05)
        freed_after = time.monotonic() - gave_up
        # cancelled, not finished: at the speed measured above, the 4000-token answer had most of
        # its tokens still to write when its slot came free (a ratio within this run, not seconds)
        assert busy_slots() == 0 and (2.0 + freed_after) * rate < 0.5 * 4000, (freed_after, rate)
    registry.close()


def test_an_engine_left_by_a_killed_platform_is_stopped_by_the_next(tmp_path: Path) -> None:
    code = ("import sys, time\n"
            "from pathlib import Path\n"
            "from qfnb.local.engines.api import generate_blocking\n"
            "from qfnb.local.engines.ask import ChatAsk, Sampling\n"
            "from qfnb.local.engines.registry import EngineOptions, EngineRegistry\n"
            "reg = EngineRegistry(Path(sys.argv[1]), options=EngineOptions(slots=2))\n"
            "generate_blocking(reg.chat('qwen2_5_coder_0_5b_instruct'), ChatAsk(model='', messages=({'role': 'user',"
            " 'content': 'hi'},), sampling=Sampling(max_tokens=2)))\n"
            "print(reg.engine_states()[0]['pid'], flush=True)\n"
            "time.sleep(600)\n")
    platform = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert platform.stdout is not None
    orphan = int(platform.stdout.readline())
    platform.kill()  # the platform process dies without stopping its engine (kill -9): the engine
    platform.wait()  # dies with it (PR_SET_PDEATHSIG), or the next platform stops it (its pid file)
    second = EngineRegistry(tmp_path, options=EngineOptions(slots=2))
    try:
        assert "Paris" in "".join(d.text for d in chat(second.chat("qwen2_5_coder_0_5b_instruct")))
        deadline = time.monotonic() + 10
        while Path(f"/proc/{orphan}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{orphan}").exists()  # stopped (the leftover was not our child: init reaps it)
    finally:
        second.close()
