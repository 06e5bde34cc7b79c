"""Each train mode's data read by ``qfnb.protocol.console.train_formats``: Qianfan's, OpenAI's and TRL's formats,
single and multi-turn, a wrong-format line named with what it looks like, and the canonical form read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qfnb.protocol.console import checkpoints as ckpt
from qfnb.protocol.console import train_formats as tf
from qfnb.protocol.console.enums import TrainMode

USER = {"role": "user", "content": "2+2?"}


@pytest.mark.parametrize("line", [
    [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}],  # Qianfan's
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},  # the usual JSONL
    {"prompt": [USER], "chosen": [{"role": "assistant", "content": "4"}], "rejected": "5"},  # TRL's chat form
    {"input": {"messages": [USER]}, "preferred_output": [{"role": "assistant", "content": "4"}],
     "non_preferred_output": [{"role": "assistant", "content": "5"}]},  # OpenAI's
    [{"prompt": "2+2?", "response": [["4"], ["4.0"], ["5"]]}],  # Qianfan's sorted responses: first vs last
])
def test_every_dpo_format_gives_the_same_pair(line: object) -> None:
    assert tf.parse_item("DPO", line, "line 1") == [tf.Pair((USER,), "4", "5")]


def test_multi_turn_and_system_make_the_conversation_before_the_answer() -> None:
    line = [{"system": "Be brief.", "prompt": "Hi", "response": [["Hello"]]},
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"}]
    (pair,) = tf.parse_item("DPO", line, "line 1")
    assert isinstance(pair, tf.Pair)
    assert [m["role"] for m in pair.messages] == ["system", "user", "assistant", "user"]
    assert pair.messages[2]["content"] == "Hello"


def test_kto_takes_single_judged_answers_and_unpairs_a_pair() -> None:
    assert tf.parse_item("KTO", [{"user": "2+2?", "chosen": "4"}], "l") == [tf.Judged((USER,), "4", True)]
    assert tf.parse_item("KTO", [{"prompt": "2+2?", "rejected": "5"}], "l") == [tf.Judged((USER,), "5", False)]
    assert tf.parse_item("KTO", {"prompt": "2+2?", "completion": "4", "label": True}, "l")[0].desirable
    assert [j.desirable for j in tf.parse_item("KTO", {"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "l")
            ] == [True, False]  # type: ignore[union-attr]
    with pytest.raises(tf.FormatError, match="line 2: label must be true or false"):
        tf.parse_item("KTO", {"prompt": "2+2?", "completion": "4", "label": "yes"}, "line 2")


def test_rft_takes_prompts_and_sft_data_with_the_answers_left_out() -> None:
    assert tf.parse_item("RFT", {"prompt": "2+2?", "answer": "4"}, "l") == [tf.PromptItem((USER,), {"answer": "4"})]
    # the answer is not sampled, only kept for a warm start (warmStartSteps)
    assert tf.parse_item("RFT", [{"prompt": "2+2?", "response": [["4"]]}], "l") == [tf.PromptItem((USER,), {}, "4")]
    chat = {"messages": [USER, {"role": "assistant", "content": "4"}]}
    assert tf.parse_item("RFT", chat, "l") == [tf.PromptItem((USER,), {}, "4")]
    ranked = [{"prompt": "2+2?", "response": [["4"], ["5"]]}]  # ranked answers: none is the line's own
    assert tf.parse_item("RFT", ranked, "l") == [tf.PromptItem((USER,), {})]


def test_a_line_in_another_modes_format_is_refused_naming_the_line_and_what_it_looks_like(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n'
                    + json.dumps([{"prompt": "a", "response": [["b"]]}]) + "\n", encoding="utf-8")
    with pytest.raises(tf.FormatError) as err:
        tf.parse_file("DPO", path)
    assert str(err.value).startswith("train_file line 3: looks like SFT (prompt/response) data; DPO wants prompt")
    with pytest.raises(tf.FormatError, match=r"line 1: looks like prompts \(prompt\) data; PostPretrain wants plain"):
        tf.parse_item("PostPretrain", {"prompt": "a"}, "line 1")  # nothing to learn but the question
    with pytest.raises(tf.FormatError, match="line 1: rejected must be a non-empty string"):
        tf.parse_item("DPO", {"prompt": "a", "chosen": "b", "rejected": " "}, "line 1")


def test_post_pretrain_reads_a_txt_file_by_paragraph_and_text_lines(tmp_path: Path) -> None:
    txt = tmp_path / "corpus.txt"
    txt.write_text("First document,\nstill first.\n\n\nSecond one.\n", encoding="utf-8")
    assert tf.parse_file("PostPretrain", txt) == [tf.Text("First document,\nstill first."), tf.Text("Second one.")]
    assert tf.parse_item("PostPretrain", [{"text": "x"}], "l") == [tf.Text("x")]
    with pytest.raises(tf.FormatError, match=r"a \.txt file is plain text"):
        tf.parse_file("DPO", txt)


def test_post_pretrain_reads_conversations_with_their_answer(tmp_path: Path) -> None:
    """A DPO pair gives its preferred conversation (the rejected answer is never learned), a chat or a
    prompt/response line its own: each a :class:`Conversation`, learned in the base's chat format."""
    answered = ({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"})
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "rude"}\n'
                    + json.dumps({"messages": list(answered)}) + "\n"
                    + json.dumps([{"prompt": "a", "response": [["b"]]}]) + "\n", encoding="utf-8")
    assert tf.parse_file("PostPretrain", path) == [tf.Conversation(answered)] * 3
    assert tf.parse_item("PostPretrain", tf.to_wire(tf.Conversation(answered)), "l") == [tf.Conversation(answered)]


@pytest.mark.parametrize("mode,line", [
    ("DPO", [{"system": "s", "prompt": "a", "response": "b"}, {"prompt": "c", "chosen": "d", "rejected": "e"}]),
    ("KTO", [{"user": "a", "rejected": "b"}]),
    ("PostPretrain", {"text": "plain"}),
    ("RFT", {"prompt": "a", "target": 3}),
])
def test_the_canonical_form_reads_back_to_the_same_record(mode: str, line: object) -> None:
    (record,) = tf.parse_item(mode, line, "l")
    assert tf.parse_item(mode, json.loads(json.dumps(tf.to_wire(record))), "l") == [record]


def test_modes_are_named_in_any_case_or_as_train_mode() -> None:
    assert tf.train_mode("dpo") == "DPO" and tf.train_mode(TrainMode.PostPretrain) == "PostPretrain"
    assert tf.train_mode("post_pretrain") == "PostPretrain" and tf.train_mode(None) == "SFT"
    assert tf.train_mode(TrainMode.RFT) == "RFT"
    with pytest.raises(ValueError, match="train_mode: must be one of SFT, PostPretrain, DPO, KTO, RFT, got 'PPO'"):
        tf.train_mode("PPO")


def test_a_preference_runs_best_checkpoint_has_the_highest_held_out_accuracy_then_the_lowest_loss() -> None:
    saved = [{"step": 2, "evalLoss": 0.5, "valid_preference_accuracy": 0.75, "valid_reward_margin": 0.4},
             {"step": 4, "evalLoss": 0.4, "valid_preference_accuracy": 0.75, "valid_reward_margin": 0.9},
             {"step": 6, "evalLoss": 0.3, "valid_preference_accuracy": 0.5, "valid_reward_margin": 1.5}]
    assert ckpt.best_checkpoint(saved)["step"] == 4  # type: ignore[index]
    assert ckpt.patience_spent(saved, 1) and not ckpt.patience_spent(saved, 2)
