"""Everyday calls, sent by both SDKs to the official mock: what each sends and gets back.

Run by ``run.py --everyday`` in the conformance venv, once per SDK (``QFNB_CONFORMANCE_ALIAS=1``:
``qianfan`` is qfnb). Each call's outcome is printed as one JSON line: the exception type, or
the request the mock echoed (``_request``) and the answer's top-level keys.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# (name, expression evaluated with ``qianfan`` in scope); one everyday use each
CALLS: list[tuple[str, str]] = [
    ("chat", 'qianfan.ChatCompletion().do(messages=[{"role": "user", "content": "hi"}])'),
    ("chat model", 'qianfan.ChatCompletion(model="ERNIE-Bot").do(messages=[{"role": "user", "content": "hi"}])'),
    ("chat endpoint wins", 'qianfan.ChatCompletion(model="ERNIE-Bot", endpoint="ep1").do('
                           'messages=[{"role": "user", "content": "hi"}])'),
    ("chat system+temperature", 'qianfan.ChatCompletion().do(messages=[{"role": "user", "content": "hi"}], '
                                'system="be brief", temperature=0.5)'),
    ("chat stream", 'list(qianfan.ChatCompletion().do(messages=[{"role": "user", "content": "hi"}], stream=True))[-1]'),
    ("chat v2", 'qianfan.ChatCompletion(version=2).do(messages=[{"role": "user", "content": "hi"}], '
                'model="ernie-4.0-8k")'),
    ("completion", 'qianfan.Completion().do(prompt="hi")'),
    ("completion chat model+endpoint", 'qianfan.Completion().do(prompt="hi", model="ERNIE-Bot", endpoint="ep2")'),
    ("embedding", 'qianfan.Embedding().do(texts=["a", "b"])'),
    ("reranker", 'qianfan.Reranker().do("q", ["a", "b"])'),
    ("text2image", 'qianfan.Text2Image().do(prompt="a cat")'),
    ("plugin eb", 'qianfan.Plugin().do([{"role": "user", "content": "hi"}], plugins=["eChart"])'),
    ("plugin custom", 'qianfan.Plugin(endpoint="plugin123").do("hi")'),
    ("tokenizer local", 'qianfan.Tokenizer.count_tokens("你好 hello world 1 2", mode="local")'),
    ("config AK", 'setattr(qianfan.get_config(), "AK", "ak_set") or qianfan.get_config().AK'),
    ("model list", 'qianfan.resources.Model.list(model_id="643")'),
    ("model detail", 'qianfan.resources.Model.detail(model_version_id="851")'),
    ("service list", 'qianfan.resources.Service.list()'),
    ("finetune v2 job list", 'qianfan.resources.FineTune.V2.job_list()'),
    ("dataset info", 'qianfan.resources.Data.get_dataset_info(12)'),
    ("entity list", 'qianfan.resources.Data.list_all_entity_in_dataset("ds-1")'),
]


def _shape(value: Any) -> Any:
    body = getattr(value, "body", value)
    if isinstance(body, dict):
        request = body.get("_request")
        if isinstance(request, dict) and isinstance(request.get("extra_parameters"), dict):
            # each SDK names itself here (qfnb on purpose, see docs/conformance.md): not compared
            request["extra_parameters"] = {**request["extra_parameters"], "request_source": "<sdk>"}
        return {"request": request, "keys": sorted(k for k in body if not k.startswith("_"))}
    return repr(value)[:200]


def main() -> None:
    root = os.environ["QFNB_CONFORMANCE_ROOT"]
    sys.path.insert(0, root)
    if os.environ.get("QFNB_CONFORMANCE_ALIAS"):
        import qfnb_alias  # noqa: F401 - installs the qianfan -> qfnb alias

    import qianfan
    import qianfan.resources
    from qianfan.tests.utils import init_test_env

    init_test_env()
    # the official tests' keys: v1 app keys and IAM keys. No v2 API key: with one qfnb sends every call
    # to the v2 routes (docs/client.md, "Which API a call uses"), which the official mock mostly lacks,
    # where 0.4.12.3 stays on v1; "chat v2" asks for v2 and gets its bearer from the IAM keys
    os.environ.pop("QIANFAN_BEARER_TOKEN", None)
    os.environ.pop("QIANFAN_API_KEY", None)
    os.environ.update(QIANFAN_AK="test_ak", QIANFAN_SK="test_sk", QIANFAN_ACCESS_KEY="test_access_key",
                      QIANFAN_SECRET_KEY="test_secret_key")
    for name, expr in CALLS:
        qianfan.config._GLOBAL_CONFIG = None
        try:
            out: Any = {"ok": _shape(eval(expr, {"qianfan": qianfan}))}
        except Exception as exc:  # the outcome is what we compare
            out = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}"}
        sys.stdout.write(json.dumps({"call": name, **out}, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()
    os._exit(0)  # the mock server thread does not stop by itself


if __name__ == "__main__":
    main()
