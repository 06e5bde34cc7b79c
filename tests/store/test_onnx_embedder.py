"""A user's ONNX embedder (``qfnb models add x.onnx --role embed``, its ``tokenizer.json`` beside it),
served by onnxruntime through the platform's embeddings routes. The model is a tiny random BERT
exported to ONNX here with torch (all-MiniLM-L6-v2's tokenizer, which a package ships); the
platform's vectors must be that model's mean-pooled, L2-normalised output as torch computes it,
the same through v1 and ``/v1/embeddings``, and a bad file is refused by name before it is stored."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import bearer, make_settings, token
from starlette.testclient import TestClient

from qfnb.local.engines.registry import EngineRegistry
from qfnb.local.engines.store import assets
from qfnb.local.engines.store.model_check import NotAModel, inspect
from qfnb.local.server.app import create_app
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                 or importlib.util.find_spec("onnx") is None,
                                 reason="onnxruntime (the onnx extra) or onnx (dev) is not installed")]

TEXTS = ["the cat sat on the mat", "重置密码：在登录页点击忘记密码", "rain today, and a much longer sentence after it"]


def _tiny_bert() -> Any:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    config._attn_implementation = "eager"  # transformers' SDPA mask code branches on the example's shapes
    return BertModel(config).eval()


def _export(model: Any, out: Path) -> Path:
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])  # a padded batch: masks are traced
    mask = (ids != 0).long()
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(Encoder().eval(), (ids, mask, torch.zeros_like(ids)), str(out), dynamo=False,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                    "last_hidden_state": axes})
    shutil.copy(assets.minilm_dir() / "tokenizer.json", out.with_name("tokenizer.json"))
    return out


def _reference(model: Any, texts: list[str]) -> tuple[list[list[float]], int]:
    """What the platform must answer: torch's mean-pooled, normalised vectors and the tokens read."""
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(assets.minilm_dir() / "tokenizer.json"))
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.inference_mode():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(pooled, dim=1).tolist(), int(mask.sum())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    tmp = tmp_path_factory.mktemp("onnx")
    model = _tiny_bert()
    (tmp / "export").mkdir()
    onnx_file = _export(model, tmp / "export" / "tiny.onnx")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QFNB_MODEL_CACHE", str(tmp / "store"))
        registry = EngineRegistry(tmp / "data")
        with pytest.raises(NotAModel, match="role 'chat' does not fit this model; it can be: embeddings"):
            registry.store.add(onnx_file, "tiny-chat", roles=("chat",))
        entry = registry.store.add(onnx_file, "tiny-onnx", roles=("embeddings",))
        assert entry.kind == "onnx" and sorted(p.name for p in Path(entry.path).iterdir() if p.name[0] != ".") == [
            "tiny.onnx", "tokenizer.json"]
        registry.reload_store()
        with TestClient(create_app(make_settings(tmp / "data"), registry), base_url="http://127.0.0.1:8123") as c:
            yield c, model
        registry.close()


def flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


def test_an_onnx_embedder_answers_with_its_own_vectors_on_every_embeddings_route(served: tuple[TestClient,
                                                                                                 Any]) -> None:
    client, model = served
    want, tokens = _reference(model, TEXTS)
    v1 = client.post(MODEL_API_PREFIX + "/embeddings/tiny_onnx", params={"access_token": token(client)},
                     json={"input": TEXTS})
    assert v1.status_code == 200 and v1.headers["X-Qfnb-Model"] == "tiny-onnx", v1.text
    vectors = [d["embedding"] for d in v1.json()["data"]]
    assert flat(vectors) == pytest.approx(flat(want), abs=1e-4)  # the model's own vectors, in order
    assert v1.json()["usage"]["prompt_tokens"] == tokens  # each text's own tokens, no padding
    openai = client.post("/v1/embeddings", headers={"Authorization": "Bearer " + bearer(client)},
                         json={"model": "tiny-onnx", "input": TEXTS})
    assert openai.status_code == 200 and openai.json()["model"] == "tiny-onnx", openai.text
    assert flat([d["embedding"] for d in openai.json()["data"]]) == pytest.approx(flat(vectors), abs=1e-6)


def test_a_bad_onnx_file_is_refused_by_name(tmp_path: Path) -> None:
    bare = tmp_path / "model.onnx"
    bare.write_bytes(b"not a protobuf at all")
    with pytest.raises(NotAModel, match=r"model\.onnx has no tokenizer\.json beside it"):
        inspect(bare)
    shutil.copy(assets.minilm_dir() / "tokenizer.json", bare.with_name("tokenizer.json"))
    with pytest.raises(NotAModel, match=r"model\.onnx is not an ONNX model onnxruntime can load"):
        inspect(bare)
