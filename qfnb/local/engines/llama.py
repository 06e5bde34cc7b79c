"""The llama.cpp backend (llama-cpp-python): quantised GGUF models, optionally with a LoRA GGUF."""

from __future__ import annotations

import codecs
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qfnb.local.engines.base import (
    ChatEngine,
    Delta,
    GenParams,
    gen_params,
    normalize_messages,
    render_gemma,
    stream_deltas,
    token_budget,
)

log = logging.getLogger("qfnb.local.engines")

N_THREADS = 2  # llama-cpp-python defaults to cpu_count()//2, which halves decode speed on 2 cores


_PARAMS_LOCK = threading.Lock()

#: llama.cpp's log levels (``ggml_log_level`` in the llama.cpp this wheel builds) -> logging's.
#: Its own lines are chatty: info and warnings stay at debug/info, errors become warnings.
_LLAMA_LOG_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.WARNING}
_llama_log = logging.getLogger("qfnb.local.llama_cpp")
_log_callback: Any = None


def _route_llama_logs() -> None:
    """Send llama.cpp's log lines to the ``qfnb.local.llama_cpp`` logger, not stderr.

    llama-cpp-python's own hook assumes an older level numbering and prints this llama.cpp's
    warnings (e.g. "using full-size SWA cache") as errors on stderr, which a notebook shows as
    a red block under the answer.
    """
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp

    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback  # type: ignore[misc]
    def callback(level: int, text: bytes, user_data: Any) -> None:
        py_level = last[0] if level == 5 else _LLAMA_LOG_LEVELS.get(level, logging.DEBUG)  # 5: continued
        last[0] = py_level
        if _llama_log.isEnabledFor(py_level):
            _llama_log.log(py_level, "%s", text.decode("utf-8", errors="replace").rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _log_callback = callback  # keep the C callback alive


def _amx_build() -> bool:
    """True if this llama.cpp build uses AMX kernels, which crash (SIGSEGV) on prompt batches here."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def _load_llama(**kwargs: Any) -> Any:
    """``llama_cpp.Llama(**kwargs)``; with an AMX build, without the extra (AMX/repack) buffer types.

    That is slower but does not crash; build llama-cpp-python with ``GGML_NATIVE=OFF`` (no AMX)
    to get full speed on such CPUs.
    """
    import llama_cpp
    from llama_cpp import llama as llama_mod

    _route_llama_logs()
    if not _amx_build():
        return llama_cpp.Llama(**kwargs)
    log.warning(
        "llama-cpp-python was built with AMX kernels, which crash on this CPU; loading without "
        "extra buffer types (slower). Rebuild with CMAKE_ARGS='-DGGML_NATIVE=OFF' for full speed."
    )
    original = llama_mod.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    with _PARAMS_LOCK:
        llama_mod.llama_cpp.llama_model_default_params = params
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            llama_mod.llama_cpp.llama_model_default_params = original


def llama_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _render_native(template: str, messages: list[dict[str, str]], bos: str, eos: str) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos, raise_exception=raise_exception
    )
    return text[len(bos) :] if bos and text.startswith(bos) else text  # llama.cpp adds BOS itself


class LlamaChatEngine(ChatEngine):
    """A ``llama_cpp.Llama`` instance; one generation at a time (a lock per instance)."""

    def __init__(
        self,
        name: str,
        gguf: Path,
        *,
        template: str = "native",
        stop: Sequence[str] = (),
        n_ctx: int = 4096,
        lora_path: Path | None = None,
    ) -> None:
        self.name, self._template, self._stop, self._n_ctx = name, template, tuple(stop), n_ctx
        kwargs: dict[str, Any] = {}
        if lora_path is not None:
            kwargs["lora_path"] = str(lora_path)
        self._llm = _load_llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=N_THREADS,
            n_threads_batch=N_THREADS,
            verbose=False,
            **kwargs,
        )
        self._lock = threading.Lock()
        self._eog = self._eog_ids()
        meta = self._llm.metadata or {}
        self._chat_template = meta.get("tokenizer.chat_template")
        if template == "native" and not self._chat_template:
            raise ValueError(f"{name}: the GGUF has no chat template; use template='gemma' or completions only")

    def _token_text(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _eog_ids(self) -> set[int]:
        import llama_cpp

        vocab = self._llm._model.vocab
        ids = {t for t in range(self._llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        for s in self._stop:  # a stop string that is one special token (e.g. <end_of_turn>) ends the turn
            toks = self._llm.tokenize(s.encode(), add_bos=False, special=True)
            if len(toks) == 1:
                ids.add(toks[0])
        return ids

    def render(self, messages: list[dict], system: str | None) -> str:
        msgs = normalize_messages(messages, system)
        if self._template == "gemma":
            return render_gemma(msgs)
        bos = self._token_text(self._llm.token_bos()) if self._llm.token_bos() >= 0 else ""
        eos = self._token_text(self._llm.token_eos()) if self._llm.token_eos() >= 0 else ""
        return _render_native(str(self._chat_template), msgs, bos, eos)

    def chat(self, messages: list[dict], *, system: str | None, params: dict) -> Iterator[Delta]:
        return self._run(self.render(messages, system), params, special=True)

    def complete(self, prompt: str, *, params: dict) -> Iterator[Delta]:
        return self._run(prompt, params, special=False)

    def _run(self, text: str, params: dict, *, special: bool) -> Iterator[Delta]:
        gp = gen_params(params, default_stop=self._stop)
        with self._lock:
            ids = self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)
            budget = token_budget(gp, len(ids), self._n_ctx, self.name)
            yield from stream_deltas(self._pieces(ids, gp), gp, len(ids), budget)

    def _pieces(self, ids: list[int], gp: GenParams) -> Iterator[str]:
        llm = self._llm
        if gp.seed is not None:
            llm.set_seed(gp.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens = llm.generate(
            ids,
            top_k=gp.top_k,
            top_p=gp.top_p,
            min_p=0.0,
            temp=0.0 if gp.greedy else gp.temperature,
            repeat_penalty=gp.repeat_penalty,
            reset=True,
        )
        try:
            for tok in tokens:
                if tok in self._eog:
                    return
                yield decoder.decode(llm.detokenize([tok]))
        finally:
            tokens.close()

    def close(self) -> None:
        self._llm.close()
