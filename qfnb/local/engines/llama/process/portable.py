"""llama.cpp's server from the ``xllamacpp`` wheel, run with ``llama-server``'s own command line.

    python qfnb/local/engines/llama/process/portable.py --model M.gguf --host 127.0.0.1 --port 0 ...

A first run on a CPU without AVX-512 cannot use the upstream prebuilt ``llama-server`` (its kernels
need AVX-512 with VNNI and BF16), and the build takes 5 to 14 minutes on two cores. The ``xllamacpp``
wheel (PyPI, CPU kernels for AVX2) embeds the same C++ server: this file starts it with the flags
:meth:`.command.ServerConfig.argv` writes, so the platform runs it as it runs ``llama-server``.
``scripts/prebuilt_llama_server.sh --install`` writes a launcher that runs this file by its path (no
qfnb package is imported: seconds at every start) as the venv's ``llama-server`` until the build is
done. It logs ``listening on http://127.0.0.1:PORT`` as ``llama-server`` does, reads the API key from
``LLAMA_API_KEY``, and stops on SIGTERM or SIGINT. A flag it does not map (speculative decoding's)
stops it at once, naming the flag. Like the upstream prebuilt it lacks the build's patches (runtime
adapter loads, batch-invariant seeds, grammar drafts), which the platform reads from ``/props`` and
works around.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class UnsupportedFlag(SystemExit):
    """A flag of llama-server's that this server does not take: it exits at once (status 1), naming it."""

    def __init__(self, flag: str) -> None:
        super().__init__(f"portable llama-server: {flag} is not supported by the xllamacpp build "
                         "(the llama-server build serves it once bootstrap has built it)")


def parser() -> argparse.ArgumentParser:
    """The llama-server flags :meth:`.command.ServerConfig.argv` writes (no others)."""
    ap = argparse.ArgumentParser(prog="llama-server (portable)", allow_abbrev=False)
    ap.add_argument("--version", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--ctx-size", type=int, default=4096)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--threads-batch", type=int)
    ap.add_argument("--threads-http", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--ubatch-size", type=int)
    ap.add_argument("--cache-ram", type=int)
    ap.add_argument("--flash-attn", choices=("on", "off", "auto"))
    ap.add_argument("--chat-template-file")
    ap.add_argument("--lora", action="append", default=[])
    for flag in ("--no-webui", "--metrics", "--jinja", "--cont-batching", "--no-warmup", "--kv-unified",
                 "--reranking", "--embedding", "--lora-init-without-apply"):
        ap.add_argument(flag, action="store_true")
    return ap


def params(args: argparse.Namespace, api_key: str | None, xlc: Any) -> Any:
    """``xllamacpp.CommonParams`` for llama-server's parsed flags (``xlc``: the ``xllamacpp`` module)."""
    p = xlc.CommonParams()
    p.model.path = args.model
    p.hostnames, p.port = [args.host], args.port
    p.n_parallel, p.n_ctx = args.parallel, args.ctx_size
    _compute(p, args)
    if args.flash_attn:
        kinds = xlc.llama_flash_attn_type
        p.flash_attn_type = {"on": kinds.LLAMA_FLASH_ATTN_TYPE_ENABLED, "off": kinds.LLAMA_FLASH_ATTN_TYPE_DISABLED,
                             "auto": kinds.LLAMA_FLASH_ATTN_TYPE_AUTO}[args.flash_attn]
    if args.chat_template_file:
        p.chat_template = Path(args.chat_template_file).read_text(encoding="utf-8")
    p.ui, p.endpoint_metrics, p.endpoint_slots, p.endpoint_props = not args.no_webui, args.metrics, True, True
    p.use_jinja, p.cont_batching, p.warmup = args.jinja, args.cont_batching, not args.no_warmup
    p.kv_unified = args.kv_unified
    if args.reranking or args.embedding:  # llama-server's --reranking: an embedding model pooled by its ranking head
        p.embedding = True
        if args.reranking:
            p.pooling_type = xlc.llama_pooling_type.LLAMA_POOLING_TYPE_RANK
    p.lora_adapters = [_adapter(xlc, path) for path in args.lora]
    p.lora_init_without_apply = args.lora_init_without_apply
    if api_key:
        p.api_keys = [api_key]
    return p


def _compute(p: Any, args: argparse.Namespace) -> None:
    """The threads, the step sizes and the prompt cache, where the command line sets them."""
    if args.threads is not None:
        p.cpuparams.n_threads = args.threads
    if args.threads_batch is not None:
        p.cpuparams_batch.n_threads = args.threads_batch
    if args.threads_http is not None:
        p.n_threads_http = args.threads_http
    if args.batch_size is not None:
        p.n_batch = args.batch_size
    if args.ubatch_size is not None:
        p.n_ubatch = args.ubatch_size
    if args.cache_ram is not None:
        p.cache_ram_mib = args.cache_ram


def _adapter(xlc: Any, path: str) -> Any:
    adapter = xlc.CommonAdapterLoraInfo()
    adapter.path, adapter.scale = path, 1.0
    return adapter


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """llama-server's command line, refused whole (:class:`UnsupportedFlag`) on a flag not mapped."""
    args, unknown = parser().parse_known_args(list(argv))
    if unknown:
        raise UnsupportedFlag(unknown[0])
    if not args.version and not args.model:
        raise SystemExit("portable llama-server: --model is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    import xllamacpp as xlc  # the optional wheel: imported once the command line is known good

    if args.version:
        print(f"version: xllamacpp {xlc.__version__} (llama.cpp's server, a portable CPU build)")
        print(xlc.get_system_info().strip())
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = xlc.Server(params(args, os.environ.get("LLAMA_API_KEY"), xlc))  # logs "listening on ..." once up
    try:
        while not stop.wait(1.0):
            pass
    finally:
        del server  # its main loop stops, its slots are released
    return 0


if __name__ == "__main__":
    sys.exit(main())
