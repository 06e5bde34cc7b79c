"""The call surface is written once and generated (``tools/unasync_calls.py``), arguments
travel as typed objects a static reading can follow, console calls are real typed methods,
and responses have lenient typed views. The type facts themselves are in
``tests/typing/check_calls.py``, which mypy checks here."""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
import typing
from pathlib import Path

from qfnb._core.http.response import QfResponse
from qfnb.resources.console import FineTune, Model, Service

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "qfnb/resources"
TOOL = ROOT / "tools/unasync_calls.py"


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(RESOURCES.rglob("*.py"))]


def test_no_locals_and_no_methods_made_at_class_creation() -> None:
    """No ``locals()`` (arguments are named), and no class attribute assigned from a call
    (the old ``create_task, acreate_task = console_api(...)`` closures)."""
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("locals", "vars"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}()")
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    value = getattr(stmt, "value", None)
                    if isinstance(value, ast.Call) and ast.unparse(value.func) != "field":  # dataclass defaults
                        found.append(f"{path.relative_to(ROOT)}:{stmt.lineno} class attribute from a call")
    assert not found, found


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_generated_files_are_up_to_date() -> None:
    done = _run(str(TOOL), "--check")
    assert done.returncode == 0, done.stderr


def test_check_fails_on_a_stale_file_and_a_run_fixes_it(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    for sub in ("inference/_source", "inference/_generated", "console"):
        shutil.copytree(RESOURCES / sub, tmp_path / "qfnb/resources" / sub)
    stale = tmp_path / "qfnb/resources/inference/_generated/chat.py"
    stale.write_text(stale.read_text().replace("stream: Literal[True]", "stream: bool", 1))
    (tmp_path / "qfnb/resources/console/iam.py").unlink()
    done = _run("tools/unasync_calls.py", "--check", cwd=tmp_path)
    assert done.returncode == 1
    assert "inference/_generated/chat.py" in done.stderr and "console/iam.py" in done.stderr
    assert "stream: bool" in stale.read_text()  # --check writes nothing
    assert _run("tools/unasync_calls.py", cwd=tmp_path).returncode == 0
    assert _run("tools/unasync_calls.py", "--check", cwd=tmp_path).returncode == 0
    assert stale.read_text() == (RESOURCES / "inference/_generated/chat.py").read_text()


def test_unasync_rewrites_the_async_source() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import unasync_calls
    finally:
        sys.path.remove(str(ROOT / "tools"))
    source = ("async def ado(self) -> QfResponse | AsyncIterator[QfResponse]:\n"
              "    return await self._acall(ChatCall(stream=True))  # an async iterator\n")
    assert unasync_calls.unasync(source) == ("def do(self) -> QfResponse | Iterator[QfResponse]:\n"
                                             "    return self._call(ChatCall(stream=True))  # an iterator\n")


def _function(path: Path, cls: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == name and not any(
                        isinstance(d, ast.Name) and d.id == "overload" for d in item.decorator_list):
                    return item
    raise AssertionError(f"{cls}.{name} not in {path}")


def test_a_static_walk_follows_messages_from_do_to_the_client() -> None:
    """``do(messages)`` -> ``self._call(ChatCall(messages=messages))`` ->
    ``ChatCall.fields()["messages"]`` -> ``_wire_body`` -> ``client.infer(..., body)``."""
    do = _function(RESOURCES / "inference/_generated/chat.py", "ChatCompletionCalls", "do")
    ret = do.body[-1]
    assert isinstance(ret, ast.Return) and isinstance(ret.value, ast.Call)
    assert ast.unparse(ret.value.func) == "self._call"
    built = ret.value.args[0]
    assert isinstance(built, ast.Call) and ast.unparse(built.func) == "ChatCall"
    assert {k.arg: ast.unparse(k.value) for k in built.keywords}["messages"] == "messages"
    fields = ast.unparse(_function(RESOURCES / "inference/params.py", "ChatCall", "fields"))
    assert "'messages': messages" in fields and "self.messages" in fields
    send = ast.unparse(_function(RESOURCES / "inference/base.py", "BaseInference", "_send"))
    assert "client.infer(" in send and ", body, " in send


def test_a_static_walk_follows_create_task_to_the_builder_and_send() -> None:
    method = _function(RESOURCES / "console/finetune.py", "V2", "create_task")
    text = ast.unparse(method)
    assert "request = build.v2_create_task(job_id, params_scale," in text
    assert "return send(request, config=config, retry=retry, overrides=overrides)" in text
    builder = (RESOURCES / "console/builders/finetune.py").read_text()
    assert '@surface("FineTune.V2.create_task")\ndef v2_create_task(' in builder


def test_console_methods_are_real_typed_defs() -> None:
    """Go-to-definition lands on a def with the builder's parameters; shift-Tab shows them."""
    assert inspect.getsourcefile(FineTune.V2.create_task) == str(RESOURCES / "console/finetune.py")
    assert inspect.iscoroutinefunction(FineTune.V2.acreate_task)
    assert not inspect.iscoroutinefunction(FineTune.V2.create_task)
    params = list(inspect.signature(FineTune.V2.create_task).parameters)
    assert params[:3] == ["job_id", "params_scale", "hyper_params"] and params[-3:] == ["config", "retry", "kwargs"]
    hints = typing.get_type_hints(FineTune.V2.acreate_task)
    assert hints["return"] is QfResponse and hints["job_id"] is str
    assert typing.get_type_hints(Model.publish)["tags"] == list[str] | None  # builtins.list, not Model.list
    assert Service.list.__doc__ and Service.alist.__doc__ == Service.list.__doc__


def test_response_views_are_lenient_and_the_dict_stays() -> None:
    v2 = QfResponse(200, {}, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "你好"},
                                           "finish_reason": "stop"}], "usage": {"total_tokens": 7}})
    assert v2.choices[0].message.content == "你好" == v2.result and v2.choices[0].finish_reason == "stop"
    assert v2.usage.total_tokens == 7 and v2["choices"][0]["message"]["content"] == "你好"
    chunk = QfResponse(200, {}, {"choices": [{"delta": {"content": "你"}}]})
    assert chunk.choices[0].delta.content == "你" and chunk.choices[0].message.content == ""
    odd = QfResponse(200, {}, {"choices": [{"message": None, "index": "x"}, "junk"], "usage": {"total_tokens": "many"}})
    assert len(odd.choices) == 1 and odd.choices[0].message.content == "" and odd.choices[0].index == 0
    assert odd.usage.total_tokens == 0  # malformed usage reads as zeros, never raises
    v1 = QfResponse(200, {}, {"result": "hi"})
    assert v1.choices == [] and v1.result == v1["result"] == v1["body"]["result"] == "hi"


def test_mypy_proves_the_type_facts() -> None:
    """``tests/typing/check_calls.py``: ``do(stream=True)`` is an iterator of responses, a
    console call is typed (not ``Any``), ``resp.choices[0].message.content`` is ``str``..."""
    done = _run("-m", "mypy", "--strict", "--warn-unused-ignores", "--follow-imports=silent",
                "tests/typing/check_calls.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_batch_item_without_a_required_field_is_refused_naming_it() -> None:
    """A ``body_list`` item reaches the typed ``ado``; one lacking a required field is sent as
    None and refused before anything is sent, as before (not a ``TypeError``)."""
    from qfnb import ChatCompletion, Embedding
    from qfnb._core.config import Config
    from qfnb._core.errors import ValidationError
    from qfnb._core.runtime import sync

    cfg = Config(ak="a1B2c3D4e5F6g7H8", sk="x1y2z3Xx9", base_url="http://127.0.0.1:9")
    assert ChatCompletion.required == ("messages",) and Embedding.required == ("texts",)
    for resource, field in ((ChatCompletion(config=cfg), "messages"), (Embedding(config=cfg), "texts")):
        [result] = sync.run(resource.abatch_do(body_list=[{"user_id": "u1"}]))
        assert isinstance(result, ValidationError) and result.field == field, result
