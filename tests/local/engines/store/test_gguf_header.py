"""The GGUF header reader agrees with gguf's own ``GGUFReader`` (metadata, tensors, offsets) on a
file written by ``GGUFWriter`` with every value type, string arrays and an odd alignment, and
says where a cut-off or foreign file breaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

from qfnb.local.engines.store.gguf_header import GGUFHeaderError, read_header


def _write(path: Path, vocab: int = 3000, alignment: int | None = 64) -> Path:
    w = GGUFWriter(str(path), "gemma3")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_string("tokenizer.chat_template", "{{ messages }} ✓")
    w.add_token_list([f"tok{i}·" for i in range(vocab)])
    w.add_array("tokenizer.ggml.scores", [float(i) / 7 for i in range(vocab)])
    w.add_array("nested", [[1, 2], [3]])
    w.add_key_value("u8", 7, GGUFValueType.UINT8)
    w.add_key_value("i16", -3, GGUFValueType.INT16)
    w.add_key_value("u64", 2**40, GGUFValueType.UINT64)
    w.add_key_value("f64", 0.125, GGUFValueType.FLOAT64)
    w.add_key_value("flag", True, GGUFValueType.BOOL)
    w.add_tensor("token_embd.weight", np.ones((16, 32), dtype=np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float16))
    q8 = np.zeros((4, 2 * 34), dtype=np.uint8)  # 4 rows of 64 Q8_0 values (2 blocks of 34 bytes)
    w.add_tensor("blk.0.ffn_up.weight", q8, raw_shape=q8.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("alignment", [None, 64])
def test_the_header_matches_gguf_own_reader(tmp_path: Path, alignment: int | None) -> None:
    path = _write(tmp_path / "m.gguf", alignment=alignment)
    ours, theirs = read_header(path), GGUFReader(str(path))
    assert [(t.name, t.data_offset, t.n_bytes, t.n_elements) for t in ours.tensors] == [
        (t.name, int(t.data_offset), int(t.n_bytes), int(t.n_elements)) for t in theirs.tensors]
    assert 0 <= path.stat().st_size - ours.end < (alignment or 32)  # the writer pads the last tensor
    assert ours.parameters == 16 * 32 + 32 + 4 * 64
    for key, fld in theirs.fields.items():
        if key.startswith("GGUF."):
            continue
        if fld.types[:2] == [GGUFValueType.ARRAY, GGUFValueType.ARRAY]:
            assert ours.array_lengths[key] == 2, key  # gguf flattens nested arrays; the outer length
        elif fld.types[0] == GGUFValueType.ARRAY:
            assert ours.array_lengths[key] == len(fld.data), key
        else:
            assert ours.fields[key] == pytest.approx(fld.contents()), key
    assert ours.fields["tokenizer.chat_template"] == "{{ messages }} ✓"
    assert ours.array_lengths["tokenizer.ggml.tokens"] == 3000


def test_a_cut_off_an_empty_and_a_foreign_file_name_the_problem(tmp_path: Path) -> None:
    whole = _write(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:5000])  # inside the vocabulary
    with pytest.raises(GGUFHeaderError, match="cut off at byte"):
        read_header(cut)
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(GGUFHeaderError, match="empty"):
        read_header(tmp_path / "empty.gguf")
    (tmp_path / "zip.gguf").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(GGUFHeaderError, match="magic"):
        read_header(tmp_path / "zip.gguf")
    bad_type = bytearray(whole)
    bad_type[24 + 8 + len(b"general.architecture")] = 99  # the first field's value type
    (tmp_path / "type.gguf").write_bytes(bytes(bad_type))
    with pytest.raises(GGUFHeaderError, match="unknown value type 99"):
        read_header(tmp_path / "type.gguf")
