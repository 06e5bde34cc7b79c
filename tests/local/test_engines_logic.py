"""Pure engine logic: stop sequences, parameter mapping, the Gemma turn format, streaming, endpoint resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines import DEFAULT_CHAT, EngineRegistry, ModelSpec, UnknownModel, endpoint_for
from qfnb.local.engines.ask import Sampling
from qfnb.local.engines.base import (
    FINISH_LENGTH,
    FINISH_NORMAL,
    FINISH_STOP,
    StopMatcher,
    render_gemma,
    stream_deltas,
    text_turns,
)
from qfnb.local.engines.registry import EngineOptions, parse_external
from qfnb.local.engines.store.assets import GEMMA3_CHAT_TEMPLATE
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.protocol.wires.qianfan.inference import CompletionRequest


def feed_all(stops: list[str], chunks: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = "".join(m.feed(c) for c in chunks)
    return out + m.flush(), m.stopped


@pytest.mark.parametrize(
    ("chunks", "expected", "stopped"),
    [
        (["Hello wor", "ld END more"], "Hello world ", True),
        (["Hello E", "N", "D"], "Hello ", True),
        (["Hello E", "NX"], "Hello ENX", False),
        (["no stop here"], "no stop here", False),
        (["ab", "cSTOP", "x"], "abc", True),
    ],
)
def test_stop_matcher_cuts_across_chunks(chunks: list[str], expected: str, stopped: bool) -> None:
    assert feed_all(["END", "STOP"], chunks) == (expected, stopped)


def test_stop_matcher_holds_back_only_possible_prefixes() -> None:
    m = StopMatcher(["<end>"])
    assert m.feed("abc<e") == "abc"
    assert m.feed("x") == "<ex"
    assert m.feed("<en") == ""
    assert m.flush() == "<en"


def test_earliest_stop_wins() -> None:
    assert feed_all(["bb", "a"], ["xxbba"]) == ("xx", True)


def test_v1_fields_map_to_engine_names_and_the_engine_fills_its_defaults() -> None:
    req = CompletionRequest.model_validate({"prompt": "p", "temperature": 0.5, "top_p": 0.9, "penalty_score": 1.3,
                                            "max_output_tokens": 7, "stop": ["x"], "top_k": 3, "seed": 5})
    gp = Sampling.of(req.model_dump()).engine_params(("<end_of_turn>",))
    assert (gp.temperature, gp.top_p, gp.repeat_penalty, gp.max_tokens, gp.top_k, gp.seed) == (0.5, 0.9, 1.3, 7, 3, 5)
    assert gp.stop == ("<end_of_turn>", "x")
    defaults = Sampling().engine_params()
    assert defaults.repeat_penalty == 1.0 and defaults.temperature == 0.8 and not defaults.greedy
    with pytest.raises(ValueError, match="max_tokens"):
        Sampling(max_tokens=0)


def test_render_gemma_matches_the_jinja_template() -> None:
    from jinja2 import Environment

    msgs = text_turns(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi "},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Q"},
        ]
    )
    jinja = Environment().from_string(GEMMA3_CHAT_TEMPLATE).render(
        messages=msgs, bos_token="", add_generation_prompt=True
    )
    ours = render_gemma(msgs)
    assert ours == jinja
    assert ours.startswith("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello")
    assert ours.endswith("<start_of_turn>model\n")


def test_text_turns_reject_bad_roles_and_join_system_turns_first() -> None:
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        text_turns([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    assert text_turns([{"role": "user", "content": "a"}, {"role": "system", "content": "s1"},
                       {"role": "system", "content": "s2"}]) == [{"role": "system", "content": "s1\ns2"},
                                                                 {"role": "user", "content": "a"}]


def test_stream_deltas_finish_reasons_and_usage() -> None:
    gp = Sampling(stop=("STOP",)).engine_params()
    deltas = list(stream_deltas(iter(["a", "b", "c"]), gp, 4, 10))
    assert "".join(d.text for d in deltas) == "abc"
    assert deltas[-1].finish_reason == FINISH_NORMAL and deltas[-1].completion_tokens == 3
    assert all(d.prompt_tokens == 4 for d in deltas)
    assert [d.completion_tokens for d in deltas] == [1, 2, 3, 3]

    closed = []

    def endless():
        try:
            while True:
                yield "x"
        finally:
            closed.append(True)

    deltas = list(stream_deltas(endless(), gp, 1, 5))
    assert "".join(d.text for d in deltas) == "xxxxx" and deltas[-1].finish_reason == FINISH_LENGTH
    assert closed == [True]
    deltas = list(stream_deltas(iter(["he", "llo ST", "OP", "never"]), gp, 1, 50))
    assert "".join(d.text for d in deltas) == "hello " and deltas[-1].finish_reason == FINISH_STOP
    assert deltas[-1].completion_tokens == 3


def test_registry_resolves_names_and_endpoints(tmp_path: Path) -> None:
    reg = EngineRegistry(tmp_path, {"My-Tiny 1": ModelSpec(kind="transformers", path=tmp_path)})
    names = {m.name: m for m in reg.served_models()}
    assert {"Qwen2.5-Coder-0.5B-Instruct", "Gemma-3-270M", "all-MiniLM-L6-v2", "My-Tiny 1"} <= set(names)
    assert names["My-Tiny 1"].endpoint == "my_tiny_1" == endpoint_for("My-Tiny 1")
    assert reg.resolve("chat", "qwen2_5_coder_0_5b_instruct").name == "Qwen2.5-Coder-0.5B-Instruct"
    assert reg.resolve("completions", "GEMMA-3-270M").name == "Gemma-3-270M"
    assert reg.resolve("embeddings", "all_minilm_l6_v2").kind == "sentence-transformers"
    with pytest.raises(UnknownModel) as err:
        reg.resolve("chat", "ernie-bot")
    assert "Qwen2.5-Coder-0.5B-Instruct" in str(err.value) and "all-MiniLM" not in str(err.value)
    with pytest.raises(UnknownModel):
        reg.resolve("embeddings", "my_tiny_1")


def test_a_loaded_engine_is_found_without_blocking_until_the_model_store_changes_on_disk(tmp_path: Path) -> None:
    """``ready_chat`` (asked on the event loop) gives a loaded engine by name or endpoint; a model store
    another process changed must be read again first (it may block), so it gives None until then."""
    reg = EngineRegistry(tmp_path)
    reg.store = ModelStore(tmp_path / "store", data_dir=tmp_path)  # not the machine's shared store
    reg.reload_store()
    first = reg.generation()
    assert first is not None
    assert reg.ready_chat("qwen2_5_coder_0_5b_instruct") is None  # not loaded: chat() loads it, in a thread
    loaded: Any = object()
    with reg._lock:
        reg._engines["Qwen2.5-Coder-0.5B-Instruct"] = loaded
    assert reg.ready_chat("qwen2_5_coder_0_5b_instruct") is loaded
    assert reg.ready_chat("QWEN2.5-CODER-0.5B-INSTRUCT") is loaded
    assert reg.ready_chat("no-such-model") is None
    reg.store.root.mkdir(parents=True, exist_ok=True)
    reg.store.manifest.write_text("{}")  # another process wrote the store
    assert reg.generation() is None and reg.ready_chat("qwen2_5_coder_0_5b_instruct") is None
    reg.served_models()  # reads it again
    now = reg.generation()
    assert now is not None and now > first and reg.ready_chat("qwen2_5_coder_0_5b_instruct") is loaded


def test_served_models_is_safe_while_services_register(tmp_path: Path) -> None:
    """Services are re-registered from a background thread after a restart while requests list models."""
    import threading
    import time

    reg = EngineRegistry(tmp_path)

    def register() -> None:
        for i in range(300):
            with reg._lock:  # what register_adapter does once its adapter is converted
                reg._add(f"svc-{i}", ModelSpec(kind="transformers", path=tmp_path))
            time.sleep(0)

    writer = threading.Thread(target=register)
    writer.start()
    while writer.is_alive():
        assert len(reg.served_models()) >= 3
        time.sleep(0)  # let the writer take the lock: a lock re-taken at once starves it for minutes
    writer.join()
    assert len(reg.served_models()) >= 303


def test_model_spec_validates_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        ModelSpec(kind="tensorrt")


@pytest.mark.parametrize("key", ["Qwen2.5-Coder-0.5B-Instruct", "qwen2_5_coder_0_5b_instruct"])
def test_an_external_engine_named_like_a_builtin_model_replaces_it(tmp_path: Path, key: str) -> None:
    options = EngineOptions(external=parse_external({key: "http://gpu-box:8000/v1"}))
    reg = EngineRegistry(tmp_path, options=options)
    chat = [m for m in reg.served_models() if m.endpoint == "qwen2_5_coder_0_5b_instruct"]
    assert [(m.name, m.kind) for m in chat] == [(DEFAULT_CHAT, "openai")]
    assert reg.resolve("completions", key).kind == "openai"


def test_bf16_autocast_only_where_the_cpu_multiplies_bf16_natively() -> None:
    from qfnb.local.training.lora import native_bf16

    assert native_bf16("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile") is True
    assert native_bf16("flags\t\t: fpu sse2 avx2 amx_bf16") is True
    # an AMD EPYC without AVX-512: torch would emulate bf16 matmuls (40x slower than fp32)
    assert native_bf16("flags\t\t: fpu sse2 avx2 fma f16c") is False
