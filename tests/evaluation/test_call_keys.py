"""An evaluation's item calls keyed by what they ask (:mod:`qfnb.evaluation.call_keys`): a restarted
kernel's rerun of the same evaluation takes the answers the local platform kept for the dead kernel's
calls (no engine call), while a changed item is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb._core.http import client as client_mod
from qfnb._core.record.cache import cache_mode
from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator
from qfnb.evaluation.call_keys import KEY_PREFIX, call_key
from qfnb.resources import ChatCompletion
from tests.fakes.local_platform import ServedPlatform

DATA = [{"prompt": f"question {i}", "response": f"tiny-chat: question {i}"} for i in range(4)]


def _outputs(platform: ServedPlatform, data: list[dict[str, str]], store: Path, api_key: str | None = None,
             **infer: object) -> list[str]:
    """The evaluation's answers (``api_key``: the user's v2 API key, the same in every kernel; None: the
    v1 app keys, whose OAuth access token each kernel fetches anew)."""
    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    config = platform.config(**({"ak": None, "sk": None, "bearer_token": api_key} if api_key else {}))
    with cache_mode("off"):  # the kernel's own response cache is not what answers here
        result = manager.eval({"tiny": ChatCompletion(model="Tiny-Chat", config=config)}, data,
                              store=store, worker_num=2, **infer)
    return [str(o) for o in result.samples_df["tiny/output"]]


def _restart() -> None:
    """What a kernel restart leaves: new clients (new random keys); the dead kernel's store writes are lost
    (each run below gets a store of its own)."""
    client_mod._CLIENTS.clear()


@pytest.mark.sockets
def test_a_rerun_after_a_restart_takes_the_kept_answers_and_asks_a_changed_item(
        local_platform: ServedPlatform, tmp_path: Path) -> None:
    """The platform keeps a keyed call's answer for its caller: the user's API key, the same after the restart."""
    api_key = local_platform.bearer_token()
    first = _outputs(local_platform, DATA, tmp_path / "dead-kernel.sqlite", api_key)
    engine = local_platform.registry.engines["tiny-chat"]
    assert len(engine.calls) == len(DATA)
    assert [o.lower() for o in first] == [d["response"] for d in DATA]

    _restart()
    again = _outputs(local_platform, DATA, tmp_path / "new-kernel.sqlite", api_key)
    assert again == first
    assert len(engine.calls) == len(DATA)  # every answer the platform kept: no engine call

    _restart()
    changed = [*DATA[:3], {"prompt": "question changed", "response": "x"}]
    third = _outputs(local_platform, changed, tmp_path / "third.sqlite", api_key)
    assert len(engine.calls) == len(DATA) + 1
    assert engine.calls[-1]["messages"][-1]["content"] == "question changed"
    assert third[:3] == first[:3] and third[3].lower() == "tiny-chat: question changed"

    _restart()  # another setting is another request: asked again, never answered with the kept answers
    _outputs(local_platform, DATA[:1], tmp_path / "fourth.sqlite", api_key, temperature=0.5)
    assert len(engine.calls) == len(DATA) + 2


@pytest.mark.sockets
def test_a_new_oauth_token_is_another_caller_whose_rerun_asks_again(
        local_platform: ServedPlatform, tmp_path: Path) -> None:
    """What is left: with v1 app keys each kernel fetches its own access token, and the platform keeps answers
    per token (a key never reaches another token's answer), so the restarted kernel's rerun asks again."""
    _outputs(local_platform, DATA[:2], tmp_path / "a.sqlite")
    _outputs(local_platform, DATA[:2], tmp_path / "b.sqlite")  # the same kernel, the same token: kept answers
    engine = local_platform.registry.engines["tiny-chat"]
    assert len(engine.calls) == 2
    _restart()
    _outputs(local_platform, DATA[:2], tmp_path / "c.sqlite")
    assert len(engine.calls) == 4


@pytest.mark.sockets
def test_without_a_store_every_run_asks_again(local_platform: ServedPlatform) -> None:
    """No store: no reuse promised (a stability check reruns to see the answers vary), so no derived keys."""
    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    for _ in range(2):
        with cache_mode("off"):
            manager.eval({"tiny": ChatCompletion(model="Tiny-Chat", config=local_platform.config())}, DATA[:2])
    assert len(local_platform.registry.engines["tiny-chat"].calls) == 4


def test_the_call_key_names_the_item_and_the_exact_body() -> None:
    body = {"messages": [{"role": "user", "content": "q"}], "temperature": 0.1}
    key = call_key("item-a", body)
    assert key.startswith(KEY_PREFIX) and len(key) <= 255 and key == call_key("item-a", dict(reversed(body.items())))
    assert call_key("item-b", body) != key
    assert call_key("item-a", {**body, "temperature": 0.2}) != key


@pytest.mark.sockets
def test_a_refreshed_store_asks_again(local_platform: ServedPlatform, tmp_path: Path) -> None:
    from qfnb.evaluation import AnswerStore

    manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    for name in ("a", "b"):
        with cache_mode("off"):
            manager.eval({"tiny": ChatCompletion(model="Tiny-Chat", config=local_platform.config())}, DATA[:2],
                         store=AnswerStore(tmp_path / f"{name}.sqlite", refresh=True))
    assert len(local_platform.registry.engines["tiny-chat"].calls) == 4
