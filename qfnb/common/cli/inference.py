"""``chat``, ``completion``, ``plugin``, ``txt2img`` and ``embedding``: the official inference commands."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from qfnb.common.cli._shared import (
    FLAG,
    CliError,
    add_sampling,
    add_search_flags,
    add_target,
    emit,
    json_object,
    read_messages,
    sampling_kwargs,
    split_list,
)
from qfnb.protocol.errors import ProtocolError

END_PROMPT, RESET_PROMPT, HELP_PROMPT = "/exit", "/reset", "/help"
HELP_MESSAGES = {END_PROMPT: "end the conversation", RESET_PROMPT: "reset the conversation",
                 HELP_PROMPT: "print this help"}


def add_parsers(sub: Any) -> None:
    list_model = {"action": "store_true", "help": "print the supported models and exit"}
    chat = sub.add_parser("chat", help="chat with an LLM in the terminal (streaming)",
                          description="Chat with the LLM in the terminal. Each line read is a user turn "
                                      f"({', '.join(f'{k}: {v}' for k, v in HELP_MESSAGES.items())}).")
    add_target(chat, "chat", many=True)
    chat.add_argument("--multi-line", **FLAG, help="a message ends with an empty line")
    chat.add_argument("--raw-output", action="store_true", help="print the answer as it comes (always: no markdown)")
    chat.add_argument("--debug", action="store_true", help="print each answer's last response body on stderr")
    chat.add_argument("--list-model", "-l", **list_model)
    add_sampling(chat, top_k=True)
    chat.add_argument("--max-output-tokens", type=int, help="maximum number of tokens to output")
    chat.add_argument("--response-format", choices=["json_object", "text"], help="response format")
    add_search_flags(chat)
    chat.add_argument("--appid", help="app id")
    chat.add_argument("--preemptible", action=argparse.BooleanOptionalAction, default=None,
                      help="allow preemptible (slower) serving")
    chat.add_argument("--extra-parameters", help="extra parameters for the model (a JSON object)")
    chat.add_argument("--addtional-arguments", "--additional-arguments", dest="additional_arguments",
                      help="more request fields (a JSON object; the official spelling works too)")
    chat.add_argument("--version", choices=["1", "2"], default="1", help="API version (default 1)")

    completion = sub.add_parser("completion", help="complete a prompt (or an odd-length list of messages)",
                                description="Complete the provided prompt or messages.")
    completion.add_argument("prompts", nargs="*", help="the prompt, or user/assistant/user... messages; "
                                                       "none: read one from stdin")
    add_target(completion, "completion")
    completion.add_argument("--plain", **FLAG, help="plain text output (the default here)")
    completion.add_argument("--list-model", "-l", **list_model)
    completion.add_argument("--multi-line", **FLAG, help="the stdin prompt ends with an empty line")
    completion.add_argument("--debug", action="store_true", help="print the response body on stderr")
    add_sampling(completion)
    add_search_flags(completion)

    plugin = sub.add_parser("plugin", help="chat with plugins in the terminal")
    plugin.add_argument("--endpoint", default=None, help="endpoint of the plugin service")
    plugin.add_argument("--model", default=None, help=argparse.SUPPRESS)
    plugin.add_argument("--plugins", required=True, help="plugins enabled, comma-separated (e.g. uuid-zhishiku)")
    plugin.add_argument("--bos-path", help="BOS path used for uploaded files")
    plugin.add_argument("--multi-line", **FLAG, help="a message ends with an empty line")
    plugin.add_argument("--debug", action="store_true", help="print each response body on stderr")
    add_sampling(plugin)

    txt2img = sub.add_parser("txt2img", help="generate an image from a prompt",
                             description="Generate images based on the provided prompt.")
    txt2img.add_argument("prompt", nargs="?", help="the prompt to generate the image (required unless --list-model)")
    txt2img.add_argument("--negative-prompt", default="", help="what the image should not show")
    add_target(txt2img, "text-to-image")
    txt2img.add_argument("--output", type=Path, default=None,
                         help="the output file (default ./<timestamp>.jpg)")
    txt2img.add_argument("--plain", **FLAG, help="no progress line")
    txt2img.add_argument("--list-model", "-l", **list_model)
    txt2img.add_argument("--debug", action="store_true", help="print the response body on stderr (images omitted)")

    embedding = sub.add_parser("embedding", help="embed texts (one JSON vector per line), or list models")
    embedding.add_argument("texts", nargs="*", help="texts to embed (none and no --list-model: read stdin lines)")
    add_target(embedding, "embedding")
    embedding.add_argument("--list-model", "-l", **list_model)


def _list_models(resource: Any) -> int:
    """The catalog's models and the platform's own (an instance asks its ``service/list``)."""
    for name in sorted(resource().models()):
        print(name)
    return 0


def _clients(args: argparse.Namespace) -> list[tuple[str, Any]]:
    from qfnb.resources import ChatCompletion  # deferred: loads the HTTP client (`qfnb --help` does not)

    clients = [(m, ChatCompletion(model=m, version=args.version)) for m in split_list(args.model)]
    clients += [(e, ChatCompletion(endpoint=e, version=args.version)) for e in split_list(args.endpoint)]
    return clients or [("default model", ChatCompletion(version=args.version))]


def _chat_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    # deferred: loads pydantic (`qfnb --help` does not)
    from qfnb.protocol.wires.qianfan.inference import check_sampling

    kwargs = sampling_kwargs(args)
    extra = json_object("--extra-parameters", getattr(args, "extra_parameters", None))
    if extra:
        kwargs["extra_parameters"] = extra
    kwargs.update(json_object("--addtional-arguments", getattr(args, "additional_arguments", None)))
    try:  # the documented ranges, checked before anything is sent
        check_sampling(kwargs)
    except ProtocolError as exc:
        raise CliError(str(exc)) from None
    return kwargs


def _stream_answer(client: Any, messages: list[dict[str, str]], kwargs: dict[str, Any], debug: bool,
                   label: str | None = None) -> str:
    """One streamed answer, printed as it arrives (under ``[label]`` side by side, naming the model
    that answered when it is not the one asked for); the whole text."""
    start, first, parts, last = time.perf_counter(), None, [], None
    for resp in client.do(messages=messages, stream=True, **kwargs):
        if label is not None and last is None:
            # deferred: `qfnb --help` skips the http rooms
            from qfnb._core.http.recording.substitution import same_model

            served = resp.served_model
            print(f"[{label} → {served}]" if served and not same_model(label, served) else f"[{label}]")
        piece = resp.result
        if piece and first is None:
            first = time.perf_counter() - start
        parts.append(piece)
        emit(piece)
        last = resp
    emit("\n")
    if debug and last is not None:
        print(json.dumps(dict(last.body), ensure_ascii=False, indent=2), file=sys.stderr)
        print(f"first token {first or 0:.3f} s, total {time.perf_counter() - start:.3f} s", file=sys.stderr)
    return "".join(parts)


def chat(args: argparse.Namespace) -> int:
    if args.list_model:
        from qfnb.resources import ChatCompletion  # deferred: loads the HTTP client (`qfnb --help` does not)

        return _list_models(ChatCompletion)
    kwargs = _chat_kwargs(args)
    clients = _clients(args)
    histories: list[list[dict[str, str]]] = [[] for _ in clients]
    if sys.stdin.isatty():
        print("Chat with " + ", ".join(name for name, _ in clients) + "; "
              + ", ".join(f"{k}: {v}" for k, v in HELP_MESSAGES.items()))
    for message in read_messages(args.multi_line):
        if message == END_PROMPT:
            break
        if message == RESET_PROMPT:
            histories = [[] for _ in clients]
            print("(conversation reset)")
            continue
        if message == HELP_PROMPT:
            for k, v in HELP_MESSAGES.items():
                print(f"{k}: {v}")
            continue
        for (name, client), history in zip(clients, histories, strict=True):
            history.append({"role": "user", "content": message})
            label = name if len(clients) > 1 else None
            history.append({"role": "assistant", "content": _stream_answer(client, history, kwargs, args.debug,
                                                                           label)})
    return 0


def completion(args: argparse.Namespace) -> int:
    from qfnb.resources import ChatCompletion, Completion  # deferred: loads the HTTP client (`qfnb --help` does not)

    if args.list_model:
        return _list_models(Completion)
    kwargs = _chat_kwargs(args)
    prompts = list(args.prompts) or list(read_messages(args.multi_line, prompt="prompt> "))[:1]
    if not prompts:
        raise CliError("no prompt given (as arguments or on stdin)")
    if len(prompts) % 2 != 1:
        raise CliError(f"the number of messages must be odd (user, assistant, ..., user), got {len(prompts)}")
    if len(prompts) == 1:
        client: Any = Completion(model=args.model, endpoint=args.endpoint)
        resp = client.do(prompt=prompts[0], **kwargs)
    else:  # a conversation goes to the chat model, as the official command does
        client = ChatCompletion(model=args.model, endpoint=args.endpoint)
        messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": p} for i, p in enumerate(prompts)]
        resp = client.do(messages=messages, **kwargs)
    print(resp.result)
    if args.debug:
        print(json.dumps(dict(resp.body), ensure_ascii=False, indent=2), file=sys.stderr)
    return 0


def plugin(args: argparse.Namespace) -> int:
    from qfnb.resources import Plugin  # deferred: loads the HTTP client (`qfnb --help` does not)

    kwargs = _chat_kwargs(args)
    if args.bos_path:
        kwargs["bos_path"] = args.bos_path
    client = Plugin(model=args.model, endpoint=args.endpoint)
    plugins = split_list(args.plugins)
    history: list[dict[str, str]] = []
    for message in read_messages(args.multi_line):
        if message == END_PROMPT:
            break
        if message == RESET_PROMPT:
            history = []
            continue
        history.append({"role": "user", "content": message})
        parts = []
        for resp in client.do(query=history, plugins=plugins, stream=True, **kwargs):
            parts.append(resp.result)
            emit(parts[-1])
            if args.debug:
                print(json.dumps(dict(resp.body), ensure_ascii=False), file=sys.stderr)
        emit("\n")
        history.append({"role": "assistant", "content": "".join(parts)})
    return 0


def txt2img(args: argparse.Namespace) -> int:
    from qfnb.resources import Text2Image  # deferred: loads the HTTP client (`qfnb --help` does not)

    if args.list_model:
        return _list_models(Text2Image)
    if not args.prompt:
        raise CliError("give the prompt to generate the image from (or --list-model)")
    output: Path = args.output or Path(f"./{time.strftime('%Y%m%d_%H%M%S')}.jpg")
    if not output.parent.is_dir():
        raise CliError(f"--output: the folder {output.parent} does not exist")
    kwargs = {"negative_prompt": args.negative_prompt} if args.negative_prompt else {}
    if not args.plain:
        print("generating...", file=sys.stderr)
    resp = Text2Image(model=args.model, endpoint=args.endpoint).do(prompt=args.prompt, **kwargs)
    images = resp["data"]
    if not images:
        raise CliError("the platform answered without an image")
    output.write_bytes(base64.b64decode(images[0]["b64_image"]))
    print(f"Image saved to {output}")
    if args.debug:
        body = dict(resp.body)
        body["data"] = [{**d, "b64_image": "omitted due to the length..."} for d in images]
        print(json.dumps(body, ensure_ascii=False, indent=2), file=sys.stderr)
    return 0


def embedding(args: argparse.Namespace) -> int:
    from qfnb.resources import Embedding  # deferred: loads the HTTP client (`qfnb --help` does not)

    if args.list_model:
        return _list_models(Embedding)
    texts = list(args.texts or (line.rstrip("\n") for line in sys.stdin if line.strip()))
    if not texts:
        raise CliError("no text given (as arguments or on stdin); --list-model lists the models")
    resp = Embedding(model=args.model, endpoint=args.endpoint).do(texts=texts)
    for item in resp["data"]:
        print(json.dumps(item["embedding"]))
    return 0


COMMANDS = {"chat": chat, "completion": completion, "plugin": plugin, "txt2img": txt2img, "embedding": embedding}
__all__ = ["COMMANDS", "add_parsers"]
