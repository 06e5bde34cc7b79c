"""The official commands (``qfnb chat|completion|...``) run as a shell user runs them: ``python -m
qfnb.cli`` in a subprocess, against the local platform's app (engine doubles, the fast training
worker) served on 127.0.0.1 by this test process, so what reached the engines can be checked."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from qfnb.cli import build_parser, main
from qfnb.common.cli import main as official
from tests.fakes.local_platform import ServedPlatform

REPO = Path(__file__).resolve().parents[2]
ROWS = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(6)]


@pytest.fixture
def shell(local_platform: ServedPlatform, tmp_path: Path) -> dict[str, str]:
    """The environment a user who exported the platform's ``QIANFAN_*`` variables has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    return {**env, **local_platform.env(), "PYTHONPATH": str(REPO), "QIANFAN_CACHE_DIR": str(tmp_path / "cache"),
            "QFNB_DATA_DIR": str(tmp_path / "data")}


def qfnb(env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qfnb.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout, check=False)


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name)
                yield from _subparsers(child, (*path, name))


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_subparsers(build_parser()))
    official = {"chat", "completion", "txt2img", "embedding", "plugin", "dataset", "trainer", "evaluation", "api",
                "cache", "openai", "proxy"}
    assert official <= {c[0] for c in commands}
    assert {("dataset", "upload"), ("dataset", "download"), ("dataset", "view"), ("dataset", "predict"),
            ("trainer", "finetune"), ("api", "raw.console")} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage:") and " ".join(command) in out.splitlines()[0]


def test_the_chat_flags_that_are_request_fields_are_read_by_the_spec_s_names() -> None:
    """``sampling_kwargs`` reads the flags named after v1 chat's fields (``V1_CHAT_FIELDS``) and the official
    CLI's own two; the command's other flags, and ``--extra-parameters`` (read as JSON by the command), stay out."""
    from qfnb.common.cli._shared import sampling_kwargs

    args = build_parser().parse_args(["chat", "--model", "m", "--temperature", "0.5", "--top-k", "3", "--system", "s",
                                      "--stop", "a,,b", "--max-output-tokens", "9", "--response-format", "text",
                                      "--no-disable-search", "--appid", "7", "--preemptible", "--debug",
                                      "--extra-parameters", "{}"])
    assert sampling_kwargs(args) == {"temperature": 0.5, "top_k": 3, "system": "s", "stop": ["a", "b"],
                                     "max_output_tokens": 9, "response_format": "text", "disable_search": False,
                                     "appid": "7", "preemptible": True}
    assert sampling_kwargs(build_parser().parse_args(["chat"])) == {}


def test_a_group_without_a_command_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    """As the official CLI (typer's no_args_is_help): ``qianfan`` and ``qianfan dataset`` print help, exit 0."""
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("usage: ")
    for group in ("dataset", "trainer", "evaluation", "api"):
        assert main([group]) == 0
        assert capsys.readouterr().out.startswith(f"usage: qfnb {group} ")
    with pytest.raises(SystemExit) as done:
        main(["dataset", "view"])  # a command still needs its arguments
    assert done.value.code == 2
    assert build_parser().parse_args(["trainer", "finetune", "-l"]).list_train_type is True  # the cookbook's -l


def test_chat_streams_a_conversation_read_from_stdin(shell: dict[str, str], local_platform: ServedPlatform) -> None:
    run = qfnb(shell, "chat", "--model", "Tiny-Chat", "--temperature", "0.5",
               stdin="hello there\nand again\n/reset\nfresh start\n/exit\nnever sent\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["tiny-chat: hello there", "tiny-chat: and again", "(conversation reset)",
                                       "tiny-chat: fresh start"]
    calls = local_platform.registry.engines["tiny-chat"].calls
    assert [len(c["messages"]) for c in calls] == [1, 3, 1]  # the history, then reset
    assert calls[1]["messages"][1] == {"role": "assistant", "content": "tiny-chat: hello there"}
    assert calls[0]["sampling"].temperature == 0.5


def test_chat_with_two_models_and_v2(shell: dict[str, str]) -> None:
    run = qfnb(shell, "chat", "--model", "Tiny-Chat,Other-Chat", stdin="hi\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[Tiny-Chat]", "tiny-chat: hi", "[Other-Chat]", "other-chat: hi"]
    run = qfnb(shell, "chat", "--version", "2", "--model", "Tiny-Chat", stdin="over v2\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "tiny-chat: over v2"


def test_side_by_side_names_the_local_model_that_answers_a_cloud_name(shell: dict[str, str]) -> None:
    run = qfnb(shell, "chat", "--model", "ERNIE-Bot,Tiny-Chat", stdin="hi\nagain\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[:4] == ["[ERNIE-Bot → Tiny-Chat]", "tiny-chat: hi", "[Tiny-Chat]", "tiny-chat: hi"]
    mapped = [line for line in run.stderr.splitlines() if "→" in line]
    assert mapped == ["qfnb: ERNIE-Bot → Tiny-Chat on the local platform (cloud model not available offline)"]


def test_a_bad_argument_is_refused_before_anything_is_sent(shell: dict[str, str],
                                                            local_platform: ServedPlatform) -> None:
    run = qfnb(shell, "chat", "--model", "Tiny-Chat", "--temperature", "5", stdin="hi\n")
    assert run.returncode == 1 and run.stderr.startswith("qfnb chat: temperature: must be in (0.0, 1.0], got 5.0")
    assert run.stderr.count("\n") == 1  # one line
    run = qfnb(shell, "chat", "--extra-parameters", "{not json", stdin="hi\n")
    assert run.returncode == 1 and "--extra-parameters is not valid JSON" in run.stderr
    run = qfnb(shell, "completion", "one", "two")
    assert run.returncode == 1 and "the number of messages must be odd" in run.stderr
    run = qfnb(shell, "chat", "--version", "3")
    assert run.returncode == 2 and "invalid choice: '3'" in run.stderr
    run = qfnb(shell, "dataset", "view", "no-such-file.jsonl")
    assert run.returncode == 1 and "no such file: no-such-file.jsonl" in run.stderr
    assert local_platform.registry.engines == {}  # no engine was asked anything


def test_completion_embedding_and_the_model_list(shell: dict[str, str]) -> None:
    run = qfnb(shell, "completion", "--model", "Tiny-Chat", "complete me")
    assert run.returncode == 0 and run.stdout.strip() == "tiny-chat: complete me", run.stderr
    run = qfnb(shell, "completion", "--model", "Tiny-Chat", "q1", "a1", "q2")  # a conversation
    assert run.returncode == 0 and run.stdout.strip() == "tiny-chat: q2", run.stderr
    run = qfnb(shell, "embedding", "--model", "Tiny-Embed", "ab", "abc")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)[0] for line in run.stdout.splitlines()] == [2.0, 3.0]
    run = qfnb(shell, "chat", "--list-model")
    assert run.returncode == 0 and "Tiny-Chat" in run.stdout.split(), run.stderr
    run = qfnb(shell, "txt2img", "--list-model")  # no prompt needed to list, as officially
    assert run.returncode == 0 and run.stdout.split(), run.stderr
    run = qfnb(shell, "txt2img")
    assert run.returncode == 1 and "give the prompt" in run.stderr


def test_the_global_credential_options_are_used(shell: dict[str, str]) -> None:
    wrong = {**shell, "QIANFAN_AK": "wrong-key", "QIANFAN_SK": "wrong-secret"}
    run = qfnb(wrong, "completion", "--model", "Tiny-Chat", "hi")
    assert run.returncode == 1 and run.stderr.startswith("qfnb completion: ")
    run = qfnb(wrong, "--ak", shell["QIANFAN_AK"], "--sk", shell["QIANFAN_SK"], "completion", "--model",
               "Tiny-Chat", "hi")
    assert run.returncode == 0 and run.stdout.strip() == "tiny-chat: hi", run.stderr
    assert shell["QIANFAN_SK"] not in run.stderr + run.stdout


def test_dataset_upload_view_download_and_predict(shell: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps([{"prompt": r["prompt"], "response": [[r["response"]]]}]) + "\n"
                            for r in ROWS))
    run = qfnb(shell, "dataset", "upload", str(data), "--dataset-name", "qa")
    assert run.returncode == 0, run.stderr
    url = run.stdout.strip().rsplit(" ", 1)[-1]
    assert url.startswith("qianfan://")
    run = qfnb(shell, "dataset", "view", url, "--row", "0,2-3", "--column", "prompt", "--raw")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["prompt"] for line in run.stdout.splitlines()] == [
        "What is 0+0?", "What is 2+2?", "What is 3+3?"]
    run = qfnb(shell, "dataset", "view", url, "--row", "9")
    assert run.returncode == 1 and "the dataset has 6 rows" in run.stderr
    out = tmp_path / "down.jsonl"
    run = qfnb(shell, "dataset", "download", url, "--output", str(out))
    assert run.returncode == 0, run.stderr
    # as the official command writes it: the platform's export, a conversation (a list of turns) per line
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        [{"prompt": r["prompt"], "response": [[r["response"]]]}] for r in ROWS]
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    run = qfnb(shell, "dataset", "insight", str(plain), "-c", "prompt")  # the data insight, as text
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"DataInsight({len(ROWS)} rows, 0 duplicate rows)") and "content_length" in run.stdout
    run = qfnb(shell, "dataset", "insight", str(plain), "-c", "nope")
    assert run.returncode == 1 and "no column 'nope'" in run.stderr
    pred = tmp_path / "pred.jsonl"
    run = qfnb(shell, "dataset", "predict", str(plain), "--model", "Tiny-Chat", "--output", str(pred),
               "--max-tokens", "0")
    assert run.returncode == 1 and "--max-tokens must be" in run.stderr and not pred.exists()
    run = qfnb(shell, "dataset", "predict", str(plain), "--model", "Tiny-Chat", "--output", str(pred),
               "--max-tokens", "64", "--temperature", "0.2")
    assert run.returncode == 0, run.stderr
    answers = [json.loads(line) for line in pred.read_text().splitlines()]
    assert [a["llm_output"] for a in answers] == [f"tiny-chat: {r['prompt']}" for r in ROWS]
    # a file of conversations (the platform's layout): the official fields, a conversation a line
    run = qfnb(shell, "dataset", "predict", str(out), "--model", "Tiny-Chat", "--reference-column", "response",
               "--output", str(pred))
    assert run.returncode == 0, run.stderr
    assert [json.loads(line) for line in pred.read_text().splitlines()] == [
        {"input_chats": [{"role": "user", "content": r["prompt"]}], "llm_output": f"tiny-chat: {r['prompt']}",
         "expected_output": r["response"]} for r in ROWS]
    # no --model: the platform's default chat model, as the official command defaults to one
    run = qfnb(shell, "dataset", "predict", str(plain), "--output", str(pred))
    assert run.returncode == 0, run.stderr
    assert len(pred.read_text().splitlines()) == len(ROWS)


def test_api_signs_any_console_action(shell: dict[str, str]) -> None:
    run = qfnb(shell, "api", "raw.console", "--route", "/v2/dataset", "--action", "CreateDataset",
               "--data", json.dumps({"datasetName": "from_api", "dataType": "Text", "dataFormat": "PromptResponse",
                                     "storageType": "sysBos"}))
    assert run.returncode == 0, run.stderr
    created = json.loads(run.stdout)["result"]
    run = qfnb(shell, "api", "raw.console", "--route", "/v2/dataset", "--action", "DescribeDatasets", "--data", "{}")
    assert run.returncode == 0, run.stderr
    assert created["datasetId"] in run.stdout
    run = qfnb(shell, "api", "raw.console", "--route", "/v2/dataset", "--action", "x", "--data", "[1]")
    assert run.returncode == 1 and "--data must be a JSON object" in run.stderr


def test_trainer_finetune_runs_the_official_job_file(shell: dict[str, str], local_platform: ServedPlatform,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.dataset import Dataset

    local_platform.set_env(monkeypatch)
    dataset_id = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "ft"}).qianfan_dataset_id
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "actions": [{"type": "LoadDataSetAction", "datasets": {"sourceType": "Platform",
                                                               "versions": [{"versionId": dataset_id}]}},
                    {"type": "TrainAction", "init_params": {
                        "train_mode": "SFT", "train_type": "Tiny-Chat", "is_incr": False, "job_name": "cli_job",
                        "train_config": {"peft_type": "LoRA", "epoch": 1, "learning_rate": 0.001,
                                         "batch_size": 2, "max_steps": 4}}},
                    {"type": "ModelPublishAction"}],
        "case_init_params": {"case_type": "Finetune"}}))
    run = qfnb(shell, "trainer", "finetune", "-f", str(job))
    assert run.returncode == 0, run.stderr
    output = json.loads(run.stdout)
    assert output["model_version_id"] and "trainer id: " in run.stderr
    trainer_id = run.stderr.split("trainer id: ")[1].split()[0]
    run = qfnb(shell, "trainer", "info", "--trainer-id", trainer_id)
    assert run.returncode == 0 and json.loads(run.stdout)["id"] == trainer_id, run.stderr
    # the id positionally, as the platform prints it (it printed the top-level usage)
    task_id = re.search(r'"(task-[A-Za-z0-9]+)"', run.stdout)
    assert task_id is not None, run.stdout
    for given in (task_id.group(1), trainer_id):
        again = qfnb(shell, "trainer", "info", given)
        assert again.returncode == 0 and json.loads(again.stdout)["id"] == trainer_id, again.stderr
    run = qfnb(shell, "trainer", "info", task_id.group(1), "--trainer-id", trainer_id)
    assert run.returncode == 1 and "give the id once" in run.stderr
    run = qfnb(shell, "trainer", "finetune", "-f", str(tmp_path / "missing.json"))
    assert run.returncode == 1 and "no such file" in run.stderr


def test_evaluation_and_cache_commands(shell: dict[str, str]) -> None:
    run = qfnb(shell, "evaluation", "list-evaluable-models")  # a cloud service: one clear line
    assert run.returncode == 1 and run.stderr.startswith("qfnb evaluation: ") and run.stderr.count("\n") == 1
    assert "is not supported by the local platform" in run.stderr
    run = qfnb(shell, "evaluation", "run", "mv-1", "--dataset-id", "ds-1")
    assert run.returncode == 1 and "enable at least one evaluator" in run.stderr
    run = qfnb(shell, "cache", "stats")
    assert run.returncode == 0 and run.stdout.split()[:2] == ["entries", "0"], run.stderr
    run = qfnb(shell, "cache", "invalidate")
    assert run.returncode == 1 and "needs the model or endpoint" in run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, child: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if child.poll() is not None:
            raise AssertionError(f"the server exited: {child.stdout.read() if child.stdout else ''}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def started(shell: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Servers a test starts; stopped (by their pid) when it ends."""
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        child.terminate()
        child.wait(10)


def test_openai_adapter_fronts_the_platform(shell: dict[str, str], started: list[subprocess.Popen[str]]) -> None:
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "openai", "--port", str(port), "--no-ignore-system"],
                             env={**shell, "QFNB_OPENAI_API_KEY": "local-key"}, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    started.append(child)
    base = f"http://127.0.0.1:{port}/v1"
    _wait_up(base + "/models", child)
    auth = {"Authorization": "Bearer local-key"}
    assert httpx.post(base + "/chat/completions", json={"model": "Tiny-Chat", "messages": []}).status_code == 401
    body = {"model": "Tiny-Chat", "messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "hi adapter"}], "temperature": 1.0}
    answer = httpx.post(base + "/chat/completions", json=body, headers=auth, timeout=30).json()
    assert answer["choices"][0]["message"]["content"] == "tiny-chat: hi adapter"
    # the fields the official adapter answers (its fingerprint is a dummy "fp_?"; null here, as OpenAI allows)
    assert set(answer) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
    with httpx.stream("POST", base + "/chat/completions", json={**body, "stream": True}, headers=auth,
                      timeout=30) as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(json.loads(line[6:])["choices"][0]["delta"]["content"] for line in lines[:-1])
    assert text == "tiny-chat: hi adapter" and len(lines) > 2
    done = httpx.post(base + "/completions", json={"model": "Tiny-Chat", "prompt": ["com", "plete"]}, headers=auth,
                      timeout=30).json()
    assert done["choices"][0]["text"] == "tiny-chat: complete" and done["usage"]["completion_tokens"] == 2
    assert "Tiny-Chat" in [m["id"] for m in httpx.get(base + "/models", headers=auth).json()["data"]]
    emb = httpx.post(base + "/embeddings", json={"model": "Tiny-Embed", "input": ["ab", "abc"]}, headers=auth,
                     timeout=30).json()
    assert [d["embedding"][0] for d in emb["data"]] == [2.0, 3.0]
    bad = httpx.post(base + "/chat/completions", json={"model": "Tiny-Chat", "messages": "x"}, headers=auth)
    assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
    two = httpx.post(base + "/chat/completions", json={**body, "n": 2}, headers=auth, timeout=30).json()
    assert [c["index"] for c in two["choices"]] == [0, 1]  # n is passed through, not dropped
    assert two["usage"]["completion_tokens"] == 2 * answer["usage"]["completion_tokens"]


def test_openai_and_proxy_refuse_a_secret_on_the_command_line(shell: dict[str, str]) -> None:
    """argv shows in ``ps`` to every user: the key comes from the environment or a 0600 file."""
    run = qfnb(shell, "openai", "--api-key", "visible-in-ps")
    assert run.returncode == 1 and "--api-key is refused" in run.stderr and "QFNB_OPENAI_API_KEY" in run.stderr
    run = qfnb(shell, "proxy", "--access-token", "visible-in-ps")
    assert run.returncode == 1 and "--access-token is refused" in run.stderr


@pytest.mark.parametrize("command", ["openai", "proxy"])
@pytest.mark.parametrize(("option", "variable"), [("--ak", "QIANFAN_AK"), ("--sk", "QIANFAN_SK"),
                                                  ("--access-key", "QIANFAN_ACCESS_KEY"),
                                                  ("--secret-key", "QIANFAN_SECRET_KEY")])
def test_the_servers_refuse_a_global_credential_on_the_command_line(
        command: str, option: str, variable: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``qfnb --ak ... proxy`` would show the key in ``ps`` for the server's whole life (and ``--detach``
    starts it again with the same argv): refused before the server starts or the environment is set."""
    started: list[str] = []

    def server(args: argparse.Namespace, argv: Sequence[str]) -> int:
        started.append(args.command)
        return 0
    monkeypatch.setitem(official.SERVERS, command, server)
    for name in official.GLOBAL_OPTIONS.values():
        monkeypatch.delenv(name, raising=False)
    assert main([option, "visible-in-ps", command, "--detach"]) == 1
    err = capsys.readouterr().err
    assert f"{option} is refused for `qfnb {command}`" in err and f"${variable}" in err and "ps" in err
    assert started == [] and variable not in os.environ


def test_proxy_signs_calls_for_a_client_without_keys(shell: dict[str, str],
                                                     started: list[subprocess.Popen[str]]) -> None:
    from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

    base_port, console_port = _free_port(), _free_port()
    child = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "proxy", "-b", str(base_port), "-c",
                              str(console_port)], env={**shell, "QFNB_PROXY_ACCESS_TOKEN": "tok"},
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    started.append(child)
    base = f"http://127.0.0.1:{base_port}"
    _wait_up(base + "/", child)
    chat = MODEL_API_PREFIX + "/chat/tiny-chat"
    body = {"messages": [{"role": "user", "content": "via proxy"}]}
    assert httpx.post(base + chat, json=body).status_code == 401
    answer = httpx.post(base + chat + "?access_token=tok", json=body, timeout=30).json()
    assert answer["result"] == "tiny-chat: via proxy"
    with httpx.stream("POST", base + chat + "?access_token=tok", json={**body, "stream": True},
                      timeout=30) as stream:
        chunks = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert len(chunks) > 1 and "".join(c["result"] for c in chunks) == "tiny-chat: via proxy"
    console = f"http://127.0.0.1:{console_port}/v2/dataset?Action=DescribeDatasets&access_token=tok"
    _wait_up(console, child)
    listed = httpx.post(console, json={}, timeout=30).json()
    assert "result" in listed, listed


def test_proxy_direct_passes_the_clients_own_credentials_through(shell: dict[str, str],
                                                                 started: list[subprocess.Popen[str]]) -> None:
    """``--direct`` (as officially): nothing is signed with the proxy's keys and no token is asked for;
    a call carrying the client's own access token or IAM signature is answered, one without is not."""
    from platform_helpers import Signer

    from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

    run = qfnb(shell, "proxy", "--direct", "--access-token-file", "tok")
    assert run.returncode == 1 and "a --direct proxy has none to guard" in run.stderr
    base_port, console_port = _free_port(), _free_port()
    child = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "proxy", "--direct", "-b", str(base_port), "-c",
                              str(console_port)], env=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    started.append(child)
    base, console = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{console_port}"
    _wait_up(base + "/", child)
    chat = base + MODEL_API_PREFIX + "/chat/tiny-chat"
    body = {"messages": [{"role": "user", "content": "direct"}]}
    unsigned = httpx.post(chat, json=body, timeout=30).json()
    assert "result" not in unsigned and unsigned.get("error_code"), unsigned  # the proxy lent no keys
    token = httpx.post(shell["QIANFAN_BASE_URL"] + "/oauth/2.0/token", params={
        "grant_type": "client_credentials", "client_id": shell["QIANFAN_AK"],
        "client_secret": shell["QIANFAN_SK"]}).json()["access_token"]
    assert httpx.post(chat, params={"access_token": token}, json=body, timeout=30).json()["result"] == \
        "tiny-chat: direct"
    with httpx.stream("POST", chat, params={"access_token": token}, json={**body, "stream": True},
                      timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        chunks = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert len(chunks) > 1 and "".join(c["result"] for c in chunks) == "tiny-chat: direct"
    _wait_up(console + "/", child)
    listed = httpx.post(console + "/v2/dataset", params={"Action": "DescribeDatasets"}, json={}, auth=Signer(),
                        timeout=30)
    assert listed.status_code == 200 and "result" in listed.json(), listed.text
    assert httpx.post(console + "/v2/dataset", params={"Action": "DescribeDatasets"}, json={},
                      timeout=30).status_code in (401, 403)


def test_trainer_from_options_runs_detached_with_daemon(shell: dict[str, str], local_platform: ServedPlatform,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.dataset import Dataset

    local_platform.set_env(monkeypatch)
    dataset_id = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "d"}).qianfan_dataset_id
    run = qfnb(shell, "trainer", "finetune", "--train-type", "Tiny-Chat", "--dataset-id", str(dataset_id),
               "--train-epoch", "1", "--train-batch-size", "2", "--train-learning-rate", "0.001", "--daemon")
    assert run.returncode == 0, run.stderr
    trainer_id = run.stdout.split("trainer[")[1].split("]")[0]
    pid = int(run.stdout.split("pid: ")[1].split()[0])
    try:
        for _ in range(600):  # the detached run outlives the command that started it
            info = json.loads(qfnb(shell, "trainer", "info", "--trainer-id", trainer_id).stdout)
            if info.get("status") in ("ModelPublished", "Failed", "Stopped"):
                break
            time.sleep(0.2)
        assert info["status"] == "ModelPublished", info
        assert info["init_params"]["train_config"]["learning_rate"] == 0.001
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    run = qfnb(shell, "trainer", "dpo", "--train-type", "Tiny-Chat")
    assert run.returncode == 1 and "--dataset-id or --dataset-bos-path is required" in run.stderr


def test_dataset_save_and_the_trainer_listings(shell: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "copy.csv"
    run = qfnb(shell, "dataset", "save", str(src), str(out))
    assert run.returncode == 0 and out.read_text().splitlines()[0] == "prompt,response", run.stderr
    conv = tmp_path / "qa.jsonl"  # a conversation per line stays one, as the official command writes it
    conv.write_text("".join(json.dumps([{"prompt": r["prompt"], "response": [[r["response"]]]}]) + "\n" for r in ROWS))
    run = qfnb(shell, "dataset", "save", str(conv), str(tmp_path / "saved.jsonl"))
    assert run.returncode == 0 and (tmp_path / "saved.jsonl").read_text() == conv.read_text(), run.stderr
    run = qfnb(shell, "trainer", "finetune", "--list-train-type")
    assert run.returncode == 0 and run.stdout.split(), run.stderr
    first = run.stdout.split()[0]
    run = qfnb(shell, "trainer", "finetune", "--show", first)
    assert run.returncode == 0 and json.loads(run.stdout)["specific_peft_types_params_limit"], run.stderr
    run = qfnb(shell, "trainer", "finetune", "-s", "No-Such-Model")
    assert run.returncode == 1 and "is not trainable here" in run.stderr
    run = qfnb(shell, "trainer", "finetune", "--train-peft-type", "LoRA")  # the official spelling is lo_ra
    assert run.returncode == 2 and "invalid choice: 'LoRA'" in run.stderr


def test_installed_as_qianfan_too(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert scripts["qianfan"] == scripts["qfnb"] == "qfnb.cli:main"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/qianfan"])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: qianfan ")
