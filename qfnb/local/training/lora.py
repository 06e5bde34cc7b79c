"""LoRA SFT building blocks: load the base, wrap it with peft, the answer-only loss and one step."""

from __future__ import annotations

import contextlib
import itertools
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.local.engines.store import assets, byom
from qfnb.local.training.data import IGNORE, batches, collate
from qfnb.local.training.spec import Hyper, WorkerSpec

if TYPE_CHECKING:
    from peft import PeftModel
    from torch import Tensor

log = logging.getLogger("qfnb.local.training")

N_THREADS = 2
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def base_model_dir(spec: WorkerSpec) -> Path:
    """The HF dir to train on: ``base_model_path`` if given, else the named model's cached bf16 dir."""
    if spec.base_model_path is not None and spec.base_model_path.suffix == ".gguf":
        # deferred, as below; an added GGUF is converted once to a trainable dir beside it
        return assets.hf_dir_of(spec.base_model_path)
    if spec.base_model_path is not None:
        if not (spec.base_model_path / "config.json").is_file():
            raise FileNotFoundError(f"base_model_path: {spec.base_model_path} has no config.json")
        return spec.base_model_path

    return assets.hf_dir(spec.base_model)


def load_base(model_dir: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in fp32 (bf16 autocast does the matmuls where the CPU has native bf16);
    the tokenizer must have a chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(N_THREADS)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if not tok.chat_template:
        raise ValueError(f"{model_dir}: the tokenizer has no chat template")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.config.use_cache = False
    return model, tok


def add_lora(model: Any, hyper: Hyper) -> PeftModel:
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in TARGET_MODULES if t in present]
    if not targets:
        raise ValueError("the base model has none of the LoRA target modules " + ", ".join(TARGET_MODULES))
    config = LoraConfig(
        r=hyper.lora_rank,
        lora_alpha=hyper.lora_alpha,  # type: ignore[arg-type]  # peft accepts float alphas
        lora_dropout=hyper.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


#: bytes of activations a token keeps per layer for the backward pass, per unit of the layer's width
#: (hidden + MLP intermediate), and per attention head and position of its sequence; fitted to Qwen2.5-Coder-0.5B
#: (a step of 4 x 256 tokens kept 3.8 GB beside the weights)
ACTIVATION_BYTES_PER_WIDTH = 22
ACTIVATION_BYTES_PER_SCORE = 8
#: the share of the memory available after loading that a step's activations may take before gradient
#: checkpointing is on (the rest: bf16 copies of the weights, the reference pass, the user's other programs)
ACTIVATION_SHARE = 1 / 3


def activation_bytes(config: Any, sequences: int, seq_len: int) -> int:
    """Estimated bytes of the activations a step on ``sequences`` sequences of ``seq_len`` tokens keeps for its
    backward pass (every layer's, without gradient checkpointing)."""
    text = config.get_text_config()
    width = text.hidden_size + (vars(text).get("intermediate_size") or 4 * text.hidden_size)
    per_token = ACTIVATION_BYTES_PER_WIDTH * width + ACTIVATION_BYTES_PER_SCORE * text.num_attention_heads * seq_len
    return int(sequences * seq_len * text.num_hidden_layers * per_token)


def fit_activations(model: Any, sequences: int, seq_len: int, available: int | None = None) -> bool:
    """Turn gradient checkpointing on when a step's activations (:func:`activation_bytes`) would take more than
    :data:`ACTIVATION_SHARE` of the memory available now; True when it did. A layer's activations are then
    recomputed in the backward pass (a step costs about a third more) and one layer's are kept at a time:
    PostPretrain's 4 blocks of 256 tokens on Qwen2.5-Coder-1.5B would keep about 8 GB."""
    needed = activation_bytes(model.config, sequences, seq_len)
    try:
        room = byom.available_bytes() if available is None else available
    except OSError:  # no /proc/meminfo (macOS): as before, every activation kept
        return False
    if needed <= ACTIVATION_SHARE * room:
        return False
    from peft import PeftModel  # deferred: with torch

    hf: Any = model.get_base_model() if isinstance(model, PeftModel) else model
    # non-reentrant: the frozen base's inputs need no gradient for the LoRA weights inside a layer to get one
    hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    log.info("gradient checkpointing on: a step of %d x %d tokens would keep about %.1f GB of activations, "
             "%.1f GB are available", sequences, seq_len, needed / 1e9, room / 1e9)
    return True


def with_lora(model: Any, hyper: Hyper, init_adapter: Path | None = None) -> PeftModel:
    """``model`` with a fresh LoRA (:func:`add_lora`), or with the trainable adapter saved in
    ``init_adapter`` (a checkpoint an incremental run continues from)."""
    if init_adapter is None:
        return add_lora(model, hyper)
    from peft import PeftModel

    if not (init_adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"init_adapter: {init_adapter} has no adapter_config.json")
    log.info("continuing from the adapter in %s", init_adapter)
    return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)


def labelled_logits(model: Any, input_ids: Tensor, attention_mask: Tensor,
                    labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The logits at the labelled (answer) positions, their target tokens, and where they are (``keep``, over
    the shifted positions). The LM head runs only on those: with Gemma's 262k-token vocabulary the full
    ``[batch, seq, vocab]`` logits would cost as much as the rest of the model."""
    import torch  # deferred: torch loads only in the training worker
    from peft import PeftModel  # deferred: with torch

    hf: Any = model.get_base_model() if isinstance(model, PeftModel) else model
    decoder, head = hf.get_decoder(), hf.get_output_embeddings()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = head(hidden[:, :-1][keep]).float()
    cap = vars(hf.config).get("final_logit_softcapping")  # Gemma's; other configs have none
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits, targets[keep], keep


def answer_loss(model: Any, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over labelled (answer) tokens (:func:`labelled_logits`)."""
    import torch

    logits, targets, _ = labelled_logits(model, input_ids, attention_mask, labels)
    return torch.nn.functional.cross_entropy(logits, targets)


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX). Without it, torch emulates
    bf16 matmuls, 40x slower than fp32 on a 2-core AMD EPYC without AVX-512 (0.8 vs 33 GFLOP/s)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


#: checked once per worker process
NATIVE_BF16 = native_bf16()


#: the bf16 copies of LM heads' weights :func:`bf16_head` decodes with, and the weight's version each was made from
_HALF_WEIGHTS: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def bf16_head(model: Any) -> Iterator[None]:
    """Decode with a bf16 copy of the LM head's weight (float32 logits out) where this CPU multiplies bf16
    natively (:data:`NATIVE_BF16`); the float32 head is put back after. The copy is made once per weight (a
    change in place makes another). Decoding reads the whole head every token: Gemma's 262k x 640 head took
    213 ms a step in float32 and 32 ms from the copy. The logits differ from float32's within bf16's precision
    (8 bits of mantissa): a greedy pick between two near-equal tokens may differ, as between two CPUs."""
    import torch
    from peft import PeftModel  # deferred: with torch

    hf: Any = model.get_base_model() if isinstance(model, PeftModel) else model
    head = hf.get_output_embeddings()
    if not NATIVE_BF16 or not isinstance(head, torch.nn.Linear) or head.bias is not None:
        yield
        return
    kept = _HALF_WEIGHTS.get(head)
    if kept is None or kept[0] != head.weight._version:
        kept = (head.weight._version, head.weight.detach().to(torch.bfloat16))
        _HALF_WEIGHTS[head] = kept
    half = kept[1]
    head.forward = lambda hidden: torch.nn.functional.linear(hidden.to(torch.bfloat16), half).float()
    try:
        yield
    finally:
        del head.forward


def sft_steps(model: Any, optimizer: Any, rows: Sequence[tuple[list[int], list[int]]], steps: int,
              batch_size: int, seed: int, pad_id: int, loss_fn: Callable[..., Any] | None = None) -> Iterator[float]:
    """``steps`` answer-loss steps on ``rows`` (``(input_ids, labels)``, in seeded batches), yielding each
    step's loss: the warm start a preference or RFT run takes on the preferred answers before its own loss
    (``loss_fn``: :func:`train_step`'s, a data-parallel group's wrapper)."""
    for _, idx in itertools.islice(batches(len(rows), batch_size, seed), steps):
        yield train_step(model, optimizer, collate([rows[i] for i in idx], pad_id), loss_fn=loss_fn)


def train_step(model: Any, optimizer: Any, batch: tuple[Any, ...],
               loss_fn: Callable[..., Any] | None = None) -> float:
    """Forward (bf16 autocast on CPUs with native bf16, else fp32), backward, clip, step. Returns the loss.
    ``loss_fn`` takes the batch's tensors and gives its loss, in place of :func:`answer_loss` on ``model``
    (another train mode's loss; data-parallel training passes its ``DistributedDataParallel`` wrapper)."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=NATIVE_BF16):
        loss = loss_fn(*batch) if loss_fn is not None else answer_loss(model, *batch)
    torch.autograd.backward(loss)
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
