"""A tiny random-weight cross-encoder (transformers' ``BertForSequenceClassification``, one label)
written as a GGUF llama.cpp serves in its reranking mode.

No reranker weights come in a PyPI package, so the tests make one: the model's own weights under
llama.cpp's BERT tensor names (``pooler.dense`` as ``cls``, ``classifier`` as ``cls.output``: the
tanh head llama.cpp's rank pooling applies, as transformers does), its WordPiece vocabulary in
llama.cpp's phantom-space form, written with the ``gguf`` library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = ("the", "cat", "dog", "sat", "on", "mat", "paris", "is", "capital", "of", "france", "weather",
         "rain", "sun", "today", "city", "what", "where", "berlin", "germany", "bank", "river", "money")
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB = (*SPECIAL, *WORDS, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"], *"abcdefghijklmnopqrstuvwxyz")


def tiny_model(seed: int = 0) -> Any:
    """The random cross-encoder (2 layers, width 32), in eval mode."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, type_vocab_size=2, num_labels=1,
                        pad_token_id=0, hidden_act="gelu_pytorch_tanh")  # llama.cpp's GELU
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # weights far from zero, so documents get clearly different scores; the
        for name, p in model.named_parameters():  # pooler's small, so its tanh does not saturate
            p.normal_(0.0, 0.02 if name.startswith("bert.pooler") else 0.5)
    return model.eval()


def _gguf_name(hf: str) -> str | None:
    import gguf

    name = hf.removeprefix("bert.")
    base, _, suffix = name.rpartition(".")
    if base == "pooler.dense":
        return f"cls.{suffix}"
    if base == "classifier":
        return f"cls.output.{suffix}"
    mapped = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, 2).get_name(base)
    return f"{mapped}.{suffix}" if mapped else None


def write_gguf(model: Any, out: Path, *, embedder: bool = False) -> Path:
    """``model`` as a GGUF of llama.cpp's ``bert`` architecture (f32 weights); ``embedder``: its encoder
    alone with mean pooling (an embedding model: no pooler, no classification head)."""
    import gguf
    import numpy as np

    cfg = model.config
    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name("tiny-reranker")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_layer_norm_eps(cfg.layer_norm_eps)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN if embedder else gguf.PoolingType.RANK)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("bert")
    writer.add_token_list([t if t in SPECIAL else t[2:] if t.startswith("##") else "\u2581" + t for t in VOCAB])
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIAL else gguf.TokenType.NORMAL for t in VOCAB])
    writer.add_token_type_count(cfg.type_vocab_size)
    for add, token in ((writer.add_pad_token_id, "[PAD]"), (writer.add_unk_token_id, "[UNK]"),
                       (writer.add_bos_token_id, "[CLS]"), (writer.add_eos_token_id, "[SEP]"),
                       (writer.add_sep_token_id, "[SEP]"), (writer.add_mask_token_id, "[MASK]")):
        add(VOCAB.index(token))
    for hf, tensor in model.state_dict().items():
        name = _gguf_name(hf)
        if name is None or (embedder and name.startswith("cls")):
            continue
        writer.add_tensor(name, tensor.detach().float().numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def hf_scores(model: Any, query: str, documents: list[str], ids: Any) -> list[float]:
    """The model's own score of each (query, document) pair, on the token ids ``ids(query, doc)``
    gives, with every token of segment A (llama.cpp's BERT adds token type 0 to all tokens)."""
    import torch

    out = []
    with torch.no_grad():
        for doc in documents:
            tokens = torch.tensor([ids(query, doc)])
            logits = model(input_ids=tokens, token_type_ids=torch.zeros_like(tokens)).logits
            out.append(float(logits[0, 0]))
    return out


def wordpiece_ids(text: str) -> list[int]:
    """``text``'s ids under :data:`VOCAB` (lower-cased words; unknown words letter by letter)."""
    ids = []
    for word in text.lower().replace("?", " ").replace(".", " ").split():
        if word in VOCAB:
            ids.append(VOCAB.index(word))
        else:
            ids += [VOCAB.index(word[0])] + [VOCAB.index("##" + c) for c in word[1:]]
    return ids
