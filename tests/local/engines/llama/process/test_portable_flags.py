"""The portable server (:mod:`qfnb.local.engines.llama.process.portable`) reads llama-server's command line as the
platform writes it: every flag of a chat, an embedding and a reranking engine mapped onto xllamacpp's
parameters, and a flag it cannot serve refused at once, by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.llama.process import portable
from qfnb.local.engines.llama.process.command import ServerConfig, speculative_args

xlc = pytest.importorskip("xllamacpp", reason="the prebuilt-server-portable extra (xllamacpp) is not installed")


def _params(config: ServerConfig, adapters: tuple[Path, ...] = ()) -> Any:
    argv = config.argv(Path("llama-server"), adapters)
    return portable.params(portable.parse(argv[1:]), "the-key", xlc)


def test_a_chat_engine_s_flags_all_arrive(tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    adapters = (tmp_path / "a.gguf", tmp_path / "b.gguf")
    config = ServerConfig(name="m", gguf=tmp_path / "m.gguf", log_dir=tmp_path, slots=6, ctx_per_slot=1024,
                          threads=3, batch=32, chat_template=str(template))
    p = _params(config, adapters)
    assert p.model.path == str(tmp_path / "m.gguf") and p.hostnames == ["127.0.0.1"] and p.port == 0
    assert (p.n_parallel, p.n_ctx, p.n_batch, p.n_ubatch) == (6, 6 * 1024, 32, 32)
    assert (p.cpuparams.n_threads, p.cpuparams_batch.n_threads, p.n_threads_http) == (3, 3, 16)
    assert p.flash_attn_type == xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
    assert p.cache_ram_mib == 0 and not p.ui and not p.warmup and not p.kv_unified and not p.embedding
    assert p.endpoint_metrics and p.endpoint_slots and p.endpoint_props and p.use_jinja and p.cont_batching
    assert p.chat_template == "{{ messages[0]['content'] }}"
    assert [a.path for a in p.lora_adapters] == [str(a) for a in adapters] and p.lora_init_without_apply
    assert p.api_keys == ["the-key"]


def test_encoders_pool_as_llama_server_would(tmp_path: Path) -> None:
    embed = _params(ServerConfig(name="e", gguf=tmp_path / "e.gguf", log_dir=tmp_path, slots=4, embedding=True))
    pooling = xlc.llama_pooling_type
    assert embed.embedding and embed.kv_unified and embed.pooling_type == pooling.LLAMA_POOLING_TYPE_UNSPECIFIED
    rank = _params(ServerConfig(name="r", gguf=tmp_path / "r.gguf", log_dir=tmp_path, slots=4, reranking=True))
    assert rank.embedding and rank.pooling_type == pooling.LLAMA_POOLING_TYPE_RANK
    assert rank.n_batch == rank.n_ubatch == 4096  # a whole (query, document) pair in one step


def test_a_flag_it_cannot_serve_stops_it_by_name(tmp_path: Path) -> None:
    config = ServerConfig(name="m", gguf=tmp_path / "m.gguf", log_dir=tmp_path,
                          speculative=speculative_args("ngram-mod"))
    with pytest.raises(portable.UnsupportedFlag, match="--spec-type is not supported"):
        portable.parse(config.argv(Path("llama-server"), ())[1:])
    with pytest.raises(SystemExit, match="--model is required"):
        portable.parse(["--port", "0"])
