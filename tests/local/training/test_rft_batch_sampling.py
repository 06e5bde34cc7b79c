"""How RFT samples (:meth:`qfnb.local.training.policy.Policy.sample`): a draw's prompts in one left-padded
generation on the worker's torch threads (the tokenizer's padding side and the model's training mode put back
after), each padded row sampled from the same
distribution as its prompt alone, on both local chat formats (Gemma 3's turn markers, Qwen 2's ChatML)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, cast

import pytest

torch = pytest.importorskip("torch")

from tiny_models import build_tiny_gemma, build_tiny_qwen  # noqa: E402

from qfnb.local.training import lora, rft  # noqa: E402
from qfnb.local.training.policy import TOP_K, TOP_P, Policy, _Draw, kept  # noqa: E402
from qfnb.local.training.rewards import RewardSample  # noqa: E402
from qfnb.local.training.spec import Hyper, WorkerSpec  # noqa: E402

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

#: prompts of different lengths, so a batch of them is padded
TEXTS = ["Hi", "What is the capital of France? Answer in one word.", "Numbers: 0 1 2 3 4 5 6 7 8 9, then?"]


@pytest.fixture(scope="module", params=["gemma", "qwen"])
def policy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    build = build_tiny_gemma if request.param == "gemma" else build_tiny_qwen
    model, tok = lora.load_base(build(tmp_path_factory.mktemp(request.param) / "model"))
    return Policy(lora.add_lora(model, Hyper()), tok)


def _prompts() -> list[rft.RftPrompt]:
    return [rft.RftPrompt(({"role": "user", "content": t},), t, {}) for t in TEXTS]


class _Rewards:
    """The reward exchange's :meth:`score`, in-process: the answer's length."""

    def score(self, samples: list[RewardSample], step: int, kind: str = "train") -> list[float]:
        return [float(len(s.completion)) for s in samples]


class _NoStop:
    requested = False


def test_a_draw_samples_all_its_prompts_in_one_generation_on_the_workers_threads(
        policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = policy.model, policy.tok
    calls: list[dict[str, Any]] = []
    generate = model.generate

    def spying(**kwargs: Any) -> Any:
        calls.append({"rows": kwargs["input_ids"].shape[0], "threads": torch.get_num_threads(),
                      "training": model.training, "mask": kwargs["attention_mask"].clone()})
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", spying)
    spec = WorkerSpec("tiny", tmp_path / "train.jsonl", Hyper(group_size=2, max_new_tokens=5, temperature=1.0))
    trainer = rft.GroupTrainer(tmp_path, spec, _NoStop(), policy, None, _prompts(), [],
                               cast(Any, _Rewards()))
    threads = torch.get_num_threads()
    model.train()
    side = tok.padding_side = "right"
    groups = trainer._draw(rft._Run(), [2, 0, 1], step=1)
    assert [(c["rows"], c["threads"], c["training"]) for c in calls] == [(6, threads, False)]
    # left padding: each row's prompt ends at the last column, the shorter prompts' padding masked before it
    lengths = [len(trainer.encoded[i]) for i in (2, 2, 0, 0, 1, 1)]
    assert calls[0]["mask"].sum(1).tolist() == lengths and calls[0]["mask"][:, -1].all()
    assert tok.padding_side == side and model.training
    assert [g.index for g in groups] == [2, 0, 1]
    assert all(len(g.completions) == 2 == len(g.rewards) and all(1 <= len(c) <= 5 for c in g.completions)
               for g in groups)


def test_a_padded_row_has_the_distribution_of_its_prompt_alone(policy: Policy,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Greedy answers to three prompts of different lengths in one batch are each prompt's answer alone, and
    each step's logits of a padded row are the lone prompt's (so sampling draws from the same distribution)."""
    logits: list[Any] = []
    generate = policy.model.generate

    def keeping_logits(**kwargs: Any) -> Any:
        out = generate(**kwargs, output_logits=True, return_dict_in_generate=True)
        logits.append(torch.stack(out.logits, dim=1))  # [rows, steps, vocab]
        return out.sequences

    monkeypatch.setattr(policy.model, "generate", keeping_logits)
    encoded = [policy.encode(p.messages) for p in _prompts()]
    assert len({len(e) for e in encoded}) == 3
    together = policy.sample(encoded, 1, 6, None)
    alone = [policy.sample([e], 1, 6, None)[0] for e in encoded]
    assert together == alone and all(len(g[0]) >= 1 for g in together)
    batch = logits[0]
    # decoding from a bf16 copy of the head (lora.bf16_head), a hidden state that differs in its 7th digit may
    # round to the next bf16 value: a logit a bf16 step apart (2.4e-4 measured on the tiny Qwen)
    tolerance = 1e-3 if lora.NATIVE_BF16 else 1e-4
    for row, (group, lone) in enumerate(zip(together, logits[1:], strict=True)):
        steps = len(group[0])
        torch.testing.assert_close(batch[row, :steps], lone[0, :steps], atol=tolerance, rtol=1e-4)


def test_sampling_draws_n_answers_a_prompt_each_cut_at_its_end_of_turn(policy: Policy) -> None:
    torch.manual_seed(0)
    drawn = policy.sample([policy.encode(p.messages) for p in _prompts()[:2]], 3, 8, 1.0)
    assert [len(g) for g in drawn] == [3, 3]
    for completion in (c for g in drawn for c in g):
        ends = [n for n, t in enumerate(completion) if t in policy.end]
        # an answer ends at its first end-of-turn token, or runs to the cap without one
        assert ends == [len(completion) - 1] if ends else len(completion) == 8


def test_a_draw_keeps_what_generates_own_top_k_and_top_p_sampling_keeps() -> None:
    """The draw's distribution is ``generate``'s ``do_sample`` one (temperature, top-k, top-p warpers): the same
    tokens with the same probabilities, on peaked scores and on flat ones."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    gen = torch.Generator().manual_seed(0)
    scores = torch.cat([torch.randn(3, 5000, generator=gen) * 10, torch.randn(3, 5000, generator=gen) * 0.5])
    for temperature in (0.7, 1.0):
        warped = scores.clone()
        for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(TOP_K), TopPLogitsWarper(TOP_P)):
            warped = warper(None, warped)
        expected = torch.softmax(warped, dim=-1)
        probs, tokens = kept(scores, temperature)
        ours = torch.zeros_like(scores).scatter_(1, tokens, probs / probs.sum(-1, keepdim=True))
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
    kept_counts = (probs > 0).sum(-1).tolist()
    # peaked rows: top-p keeps a few; flat ones: top-k cuts 5,000 to 64, top-p a few more
    assert max(kept_counts[:3]) < 30 < min(kept_counts[3:]) <= TOP_K


def test_a_draw_picks_one_kept_token_a_row_and_greedy_decoding_takes_it() -> None:
    torch.manual_seed(0)
    scores = torch.randn(4, 300) * 4
    probs, tokens = kept(scores, 1.0)
    out = _Draw(1.0)(None, scores)
    picked = out.argmax(-1)
    assert (out.isfinite().sum(-1) == 1).all()
    for row in range(4):
        allowed = tokens[row][probs[row] > 0].tolist()
        assert int(picked[row]) in allowed


def test_held_out_sft_lines_are_judged_with_their_answers_so_a_numbered_collapse_is_seen(
        policy: Policy, tmp_path: Path) -> None:
    """Held-out prompts given as SFT lines carry their answers as references: a checkpoint that answers every
    question with one apology, its ticket number aside, collapsed (round 38: a Gemma-3-270M RFT run so, its
    references dropped, was read "0 of 8 answers degenerate" and served)."""
    import json

    from qfnb.protocol.console.checkpoints import judge_checkpoint
    from qfnb.protocol.console.degeneration import judge_answers

    questions = ["这个月被重复扣款了。", "我的套餐能加一个成员吗？", "怎么取消自动续费？", "怎么开启两步验证？",
                 "你们有电话客服吗？", "更新之后文件不见了。", "怎么把文件夹共享给同事？", "发票在哪里下载？"]
    path = tmp_path / "eval.jsonl"
    replies = ["多扣的钱会原路退回。", "请进入“团队-邀请”。", "请进入“续费管理”关闭。", "请进入“安全设置”开启。",
               "我们提供在线客服。", "请在回收站找回。", "请右键选择“共享”。", "请在“费用中心”下载。"]
    path.write_text("".join(json.dumps({"prompt": q, "response": f"{r}[Ticket #{4000 + n}]"}, ensure_ascii=False)
                            + "\n" for n, (q, r) in enumerate(zip(questions, replies, strict=True))), "utf-8")
    held = rft.load_prompts(path, "eval_file")
    spec = WorkerSpec("tiny", tmp_path / "train.jsonl", Hyper(group_size=2, max_new_tokens=5))
    trainer = rft.GroupTrainer(tmp_path, spec, _NoStop(), policy, None, _prompts(), held, cast(Any, _Rewards()))
    assert trainer.answers is not None
    assert [p.reference for p in trainer.answers.prompts] == [json.loads(line)["response"]
                                                              for line in path.read_text("utf-8").splitlines()]
    said = [f"抱歉為您添麻烦事。[Ticket #{t}]" for t in (3888, 3888, 6884, 2888, 3888, 3888, 6888, 5888)]
    report = trainer.answers.judge(said, [None] * len(said))
    assert report.same_count == 8
    echoing_base = judge_answers([f"{q} mendatanguser\n" * 5 for q in questions], finish_reasons=["length"] * 8)
    assert judge_checkpoint(report, echoing_base).degenerate
    # without the answers, a number may be all an answer says: the same apology is not read as one
    assert judge_answers(said).same_answer is None
