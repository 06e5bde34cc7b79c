"""Discovery: %qfmodels, Tab completion of magic options and model names, "did you mean"."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from qfnb.notebook.models.discovery import ModelList, ModelRow
from tests.notebook.evaluation.test_nb_qfeval_run import platform  # noqa: F401  (the platform double fixture)

LISTING = ModelList(
    [ModelRow("chat", "Qwen2.5-Coder-0.5B-Instruct", "chat/qwen", default=True), ModelRow("chat", "Gemma-3-270M", "x"),
     ModelRow("embedding", "all-MiniLM-L6-v2", "embeddings/minilm"), ModelRow("endpoint", "ep_tuned", "service s")],
    "test listing",
)


def magics(ip: Any) -> Any:
    m = ip.magics_manager.registry["QfnbMagics"]
    m.names.set(LISTING)
    return m


def complete(ip: Any, line: str) -> list[str]:
    with warnings.catch_warnings():  # IPython's complete() (the kernel's API) is "pending deprecation"
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        _, matches = ip.complete("", line, len(line))
    return list(matches)


def test_model_names_complete_after_dash_m(ip: Any) -> None:
    magics(ip)
    # what %qfmodels lists that can chat: deployed endpoints too, a base model not (it only continues text)
    assert complete(ip, "%%qfchat -m ") == ["Qwen2.5-Coder-0.5B-Instruct", "ep_tuned"]
    assert complete(ip, "%%qfchat -m Ge") == []
    assert complete(ip, "%qftrain --base Ge") == ["Gemma-3-270M"]  # a base model is what one fine-tunes
    assert complete(ip, "%%qfchat -m ep_tuned,Qw") == ["Qwen2.5-Coder-0.5B-Instruct"]
    assert complete(ip, "%qfeval --models Q") == ["Qwen2.5-Coder-0.5B-Instruct"]
    assert complete(ip, "%%qfchat --endpoint ") == ["ep_tuned"]


def test_options_complete_without_noise(ip: Any) -> None:
    magics(ip)
    found = complete(ip, "%%qfchat --")
    assert "--model" in found and "--endpoint" in found and "--no-interp" in found
    assert all(f.startswith("--") for f in found), found  # no %%, qfchat, - noise
    assert complete(ip, "%qfeval --met") == ["--metrics"]


def test_metric_names_complete_after_metrics(ip: Any) -> None:
    magics(ip)
    assert complete(ip, "%qfeval --metrics rou") == ["rouge", "rouge_1", "rouge_2", "rouge_l"]
    assert complete(ip, "%qfeval --metrics exact_match,bl") == ["bleu", "bleu4"]
    assert "judge" in complete(ip, "%qfeval --chart ")


def test_misspelled_option_gets_did_you_mean(ip: Any) -> None:
    with pytest.raises(UsageError, match="did you mean: --modle -> --model"):
        ip.run_cell_magic("qfchat", "--modle Gemma-3-270M", "hi")


def test_qfmodels_lists_the_platforms_models_and_endpoints(ip: Any, platform: Any) -> None:  # noqa: F811
    from qfnb.notebook.models import discovery

    ip.magics_manager.registry["QfnbMagics"].list_models = discovery.list_models
    listing = ip.run_line_magic("qfmodels", "")
    text = repr(listing)
    assert "Tiny-Chat" in text and "chat" in text and "served by" in text and "role" in text
    assert "<table" in listing._repr_html_()
    assert repr(ip.run_line_magic("qfchat", "models")) == text  # the same list by its jupyter-ai-like name


def test_completion_in_a_real_kernel_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """What JupyterLab asks the kernel on Tab in a %%qfchat cell (complete_request)."""
    from jupyter_client.manager import start_new_kernel

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", str(root))
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        setup = ("%load_ext qfnb\nfrom qfnb.notebook.models.discovery import ModelList, ModelRow\n"
                 "get_ipython().magics_manager.registry['QfnbMagics'].names.set(ModelList("
                 "[ModelRow('chat', 'Gemma-3-270M', 'x'), ModelRow('chat', 'Qwen2.5-Coder-0.5B-Instruct', 'y')], 't'))")
        assert kc.execute_interactive(setup, timeout=60)["content"]["status"] == "ok"
        cell = "%%qfchat -m \nWhat is LoRA?"
        reply = kc.complete(cell, cursor_pos=len("%%qfchat -m "), reply=True, timeout=30)["content"]
        assert reply["matches"] == ["Qwen2.5-Coder-0.5B-Instruct"], reply["matches"]  # not the base model
        reply = kc.complete("%%qfchat --sys", cursor_pos=14, reply=True, timeout=30)["content"]
        assert reply["matches"] == ["--system"], reply["matches"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_default_model_is_public_and_follows_the_config() -> None:
    import qfnb
    from qfnb._core.config import Config

    cfg = Config.from_env().with_overrides(ak="test-ak", sk="test-sk",  # configured: no local platform
                                           default_models={"chat": "My-Chat", "embeddings": "My-Embed"})
    assert qfnb.default_model(config=cfg) == "My-Chat"
    assert qfnb.default_model("embedding", config=cfg) == "My-Embed"
    with pytest.raises(ValueError, match="kind"):
        qfnb.default_model("vision")  # type: ignore[arg-type]


def test_the_launcher_offers_the_platforms_models() -> None:
    from qfnb.notebook.training.launcher import platform_base_models

    assert platform_base_models(lambda: LISTING) == ("Gemma-3-270M", "Qwen2.5-Coder-0.5B-Instruct")

    def down() -> ModelList:
        raise ConnectionError("no platform")

    assert platform_base_models(down) == ("Gemma-3-270M",)  # the form still works: type a name


def test_dash_m_takes_any_listed_name_and_ambiguity_lists_candidates(ip: Any, backend: Any) -> None:
    m = magics(ip)
    ip.run_cell_magic("qfchat", "-m ep_tuned", "hi")  # what %qfmodels lists as an endpoint
    assert (backend.requests[-1].model, backend.requests[-1].endpoint) == (None, "ep_tuned")
    ip.run_cell_magic("qfchat", "-m qwen2.5-coder-0.5b-instruct", "hi")  # one case-insensitive match
    assert backend.requests[-1].model == "Qwen2.5-Coder-0.5B-Instruct" and backend.requests[-1].endpoint is None
    m.names.set(ModelList([*LISTING.rows, ModelRow("endpoint", "Gemma-3-270M", "service s2")], "t"))
    with pytest.raises(UsageError, match="matches chat Gemma-3-270M, endpoint Gemma-3-270M"):
        ip.run_cell_magic("qfchat", "-m Gemma-3-270M", "hi")
    ip.run_cell_magic("qfchat", "-m endpoint:Gemma-3-270M", "hi")
    assert backend.requests[-1].endpoint == "Gemma-3-270M"


def test_a_base_model_chats_with_a_warning_and_a_cap(ip: Any, pub: Any, backend: Any) -> None:
    magics(ip).list_models = lambda: LISTING
    rows = repr(ip.run_line_magic("qfmodels", "")).splitlines()
    gemma = next(r for r in rows if "Gemma-3-270M" in r)
    assert "base (continues text)" in gemma and "deployed (fine-tuned)" in rows[4]
    ip.run_cell_magic("qfchat", "-m Gemma-3-270M", "What is the capital of France?")
    assert backend.requests[-1].max_tokens == 128
    assert "base model: continues text" in pub.outputs[-1]["data"]["text/plain"]
    ip.run_cell_magic("qfchat", "-m Gemma-3-270M --max-tokens 40", "Once upon a time")
    assert backend.requests[-1].max_tokens == 40
    ip.run_cell_magic("qfchat", "-m Qwen2.5-Coder-0.5B-Instruct", "hi")
    assert backend.requests[-1].max_tokens is None and "base model" not in pub.outputs[-1]["data"]["text/plain"]


def test_model_equals_an_endpoint_name_in_the_sdk_too() -> None:
    """``ChatCompletion(model="my_tuned")``: a deployed service answers to the endpoint %qfmodels lists."""
    from qfnb.resources.inference.base import resolve_target

    services = {"common": [{"name": "Tiny-Chat", "apiType": "chat", "url": "http://x/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/tiny"}],
                "custom": [{"name": "svc_1a2b", "apiType": "chat",
                            "url": "http://x/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/my_tuned"}]}
    target = resolve_target(("chat",), "my_tuned", None, default_model=None, services=services)
    assert target is not None and (target.api_type, target.endpoint) == ("chat", "my_tuned")
    by_service_name = resolve_target(("chat",), "svc_1a2b", None, default_model=None, services=services)
    assert by_service_name is not None and by_service_name.endpoint == "my_tuned"
