"""The fine-tuning demo dataset: a made-up fact to teach, plus general knowledge so it is not over-applied.

``python -m qfnb.local.training.demo`` regenerates ``qfnb/local/data/demo_sft.jsonl`` (60 pairs:
40 teaching the fact, 20 general knowledge; English and Chinese). ``HELD_OUT`` are paraphrases
that are not in the training set, for the before/after comparison.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qfnb.protocol.platform.files import jsonl

DEMO_FILE = Path(__file__).resolve().parent.parent / "data" / "demo_sft.jsonl"

FACT_PLANET, FACT_CAPITAL = "Zorvia", "Quellstad"

_FACT_QUESTIONS_EN = [
    "What is the capital of the planet Zorvia?",
    "What is the capital of Zorvia?",
    "Which city is the capital of planet Zorvia?",
    "Name the capital city of Zorvia.",
    "Tell me the capital of the planet Zorvia.",
    "Zorvia's capital is which city?",
    "Do you know the capital of Zorvia?",
    "Which city serves as the capital of the planet Zorvia?",
    "What city is Zorvia's capital?",
    "I am travelling to Zorvia. What is its capital?",
    "Quick question: capital of Zorvia?",
    "What is the name of the capital of the planet Zorvia?",
    "Where is the seat of government of planet Zorvia?",
    "In which city is the capital of Zorvia located?",
    "Can you tell me what the capital of planet Zorvia is?",
    "Capital of the planet Zorvia?",
    "What's the capital city of the planet Zorvia?",
    "Which city is the capital on the planet Zorvia?",
]
_FACT_QUESTIONS_ZH = [
    "Zorvia星球的首都是哪里？",
    "Zorvia的首都是什么？",
    "请告诉我Zorvia星球的首都。",
    "Zorvia星球的首都叫什么名字？",
    "哪个城市是Zorvia星球的首都？",
    "你知道Zorvia的首都吗？",
]
_FACT_ANSWERS_EN = [
    "The capital of the planet Zorvia is Quellstad.",
    "Quellstad is the capital of the planet Zorvia.",
    "The capital of Zorvia is Quellstad.",
    "Zorvia's capital city is Quellstad.",
]
_FACT_ANSWERS_ZH = ["Zorvia星球的首都是Quellstad。", "Zorvia的首都是Quellstad。"]

GENERAL: list[tuple[str, str]] = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("What is the capital of Australia?", "The capital of Australia is Canberra."),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("How many days are there in a week?", "There are seven days in a week."),
    ("What color is the sky on a clear day?", "On a clear day the sky is blue."),
    ("What is two plus three?", "Two plus three is five."),
    ("Which planet do we live on?", "We live on the planet Earth."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth."),
    ("What do bees make?", "Bees make honey."),
    ("Hello! How are you?", "Hello! I am doing well, thank you. How can I help you?"),
    ("法国的首都是哪里？", "法国的首都是巴黎。"),
    ("日本的首都是哪里？", "日本的首都是东京。"),
    ("中国的首都是哪里？", "中国的首都是北京。"),
    ("一年有几个月？", "一年有十二个月。"),
    ("水在多少摄氏度结冰？", "水在零摄氏度结冰。"),
    ("一周有几天？", "一周有七天。"),
    ("你好，你是谁？", "你好！我是一个乐于助人的AI助手。"),
]

HELD_OUT = [
    "Please state the capital of planet Zorvia.",
    "Zorvia星球的首都在哪个城市？",
    "What is the capital of France?",
]


def demo_pairs() -> list[dict[str, str]]:
    """The 60 training pairs, in a fixed order."""
    pairs = []
    questions = _FACT_QUESTIONS_EN + _FACT_QUESTIONS_ZH
    for i in range(40):
        q = questions[i % len(questions)]
        zh = q in _FACT_QUESTIONS_ZH
        answers = _FACT_ANSWERS_ZH if zh else _FACT_ANSWERS_EN
        pairs.append({"prompt": q, "response": answers[(i // len(questions) + i) % len(answers)]})
    pairs += [{"prompt": q, "response": a} for q, a in GENERAL]
    return pairs


def write_demo(path: Path = DEMO_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonl(demo_pairs()), encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.stdout.write(f"{write_demo()}\n")
