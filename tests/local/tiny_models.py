"""Tiny random-weight causal LMs (Gemma 3 and Qwen 2 shapes) with a byte-level BPE tokenizer, built offline.

They load in well under a second, so engine and training tests need no real weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qfnb.local.engines.store.assets import GEMMA3_CHAT_TEMPLATE

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "The capital of planet Xylo-7 is Brindlemoor. 你好，世界！法国的首都是巴黎。",
    "Hello, how are you today? I am fine, thank you. Numbers: 0 1 2 3 4 5 6 7 8 9.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
]

#: the size both tiny models share: two layers, 64 wide, a 1,024-token context
_TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 1024,
    "initializer_range": 0.2,  # a frozen random head with the default 0.02 caps logits near 1: LoRA could not fit
}


def _tokenizer(specials: list[str], template: str, bos: str | None, eos: str, pad: str) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(_CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=eos, pad_token=pad)
    tok.add_special_tokens({"additional_special_tokens": [s for s in specials if s not in (bos, eos, pad)]})
    tok.chat_template = template
    return tok


def build_tiny_gemma(out: Path, seed: int = 0) -> Path:
    """A 2-layer Gemma 3 text model with the Gemma turn format; eos = ``<eos>`` and ``<end_of_turn>``."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = _tokenizer(
        ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"], GEMMA3_CHAT_TEMPLATE, "<bos>", "<eos>", "<pad>"
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<pad>", "<eos>", "<bos>", "<end_of_turn>")}  # type: ignore[attr-defined]
    config = Gemma3TextConfig(
        vocab_size=len(tok),  # type: ignore[arg-type]
        **_TINY_SHAPE,
        head_dim=32,
        sliding_window=128,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
        eos_token_id=ids["<eos>"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    model.generation_config.eos_token_id = [ids["<eos>"], ids["<end_of_turn>"]]
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))  # type: ignore[attr-defined]
    return out


def build_tiny_qwen(out: Path, seed: int = 0) -> Path:
    """A 2-layer Qwen 2 model with a ChatML template; eos = ``<|im_end|>``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = _tokenizer(specials, CHATML_TEMPLATE, None, "<|im_end|>", "<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tok),  # type: ignore[arg-type]
        **_TINY_SHAPE,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),  # type: ignore[attr-defined]
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),  # type: ignore[attr-defined]
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(str(out))
    tok.save_pretrained(str(out))  # type: ignore[attr-defined]
    return out


def teach_answers(model_dir: Path, pairs: list[tuple[str, str]], steps: int = 40, lr: float = 1e-2) -> Path:
    """Fine-tune every weight of the tiny model at ``model_dir`` (in place) until it answers each ``(prompt,
    answer)`` pair's prompt (a user turn) with its answer: a base that answers, for tests that judge what a tuned
    model writes beside its base's answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    rows = []
    for prompt, answer in pairs:
        turn = [{"role": "user", "content": prompt}]
        head = tok.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template([*turn, {"role": "assistant", "content": answer}], tokenize=False)
        p_ids = tok(head, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"]
        rows.append((ids, len(p_ids)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, start) in enumerate(rows):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, start:len(ids)] = torch.tensor(ids[start:])
        mask[i, :len(ids)] = 1
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model: more threads only contend (minutes instead of seconds under load)
    try:
        for _ in range(steps):
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(str(model_dir))
    return model_dir
