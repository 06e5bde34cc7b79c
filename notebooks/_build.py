"""Regenerate the tour notebooks: ``python notebooks/_build.py``.

Cells are saved without outputs, except the contract cells made with :func:`check`: they start
with ``# NBVAL_CHECK_OUTPUT`` and carry the expected output written here, which
``pytest --nbval-lax`` (and the browser test for notebook 02) compares with a fresh run after
``nbval_sanitize.cfg``. Expected outputs are literal text, never captured from a run, so no
token, path or timing can land in the saved notebooks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

HERE = Path(__file__).parent
IGNORE = {"tags": ["nbval-ignore-output"]}
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def code(src: str, **meta: object) -> nbformat.NotebookNode:
    return new_code_cell(src.strip(), metadata=dict(meta))


def check(src: str, *, stdout: str | None = None, result: str | None = None) -> nbformat.NotebookNode:
    """A contract cell: its expected printed text (``stdout``) and/or text/plain result."""
    outputs = []
    if stdout is not None:
        outputs.append(new_output("stream", name="stdout", text=stdout))
    if result is not None:
        outputs.append(new_output("execute_result", data={"text/plain": result}, execution_count=None))
    if not outputs:
        raise ValueError("a contract cell needs an expected output")
    return new_code_cell(f"{CHECK_MARK}\n{src.strip()}", outputs=outputs)


def md(src: str) -> nbformat.NotebookNode:
    return new_markdown_cell(src.strip())


def notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """The notebook, with stable cell ids (regenerating an unchanged notebook changes nothing).

    Contract cells get the execution count of a top-to-bottom run: nbval refuses stored outputs
    of a cell that was never run.
    """
    count = 0
    for i, cell in enumerate(cells):
        cell.id = hashlib.sha1(f"{i}:{cell.source}".encode()).hexdigest()[:8]
        if cell.cell_type == "code":
            count += 1
            if cell.outputs:
                cell.execution_count = count
                for out in cell.outputs:
                    if out.output_type == "execute_result":
                        out.execution_count = count
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb


QUICK = [
    md("""
# qfnb quick tour

Chat, streaming `%%qfchat`, a batch with a progress bar, and embeddings — on the embedded local
platform (no credentials needed: qfnb starts it on first use and says so in the log).
"""),
    code("""
%load_ext qfnb
import qfnb
"""),
    md("""
## 0. What can answer

`%qfmodels` lists the chat and embedding models and this platform's endpoints (Tab after `-m`
in a magic completes the same names).
"""),
    code("%qfmodels", **IGNORE),
    md("## 1. Chat from Python"),
    code("""
chat = qfnb.ChatCompletion()
resp = chat.do(messages=[{"role": "user", "content": "In one sentence: what is LoRA fine-tuning?"}],
               temperature=0.2)
print(resp["result"])
print(resp["usage"])
""", **IGNORE),
    md("""
## 2. `%%qfchat`: the answer streams into one output

Usage and latency show under the answer, with the model's name; `--max-tokens` caps its length.
`-o` keeps it; `{name}` pulls variables in (an undefined one is an error, not sent), while
literal braces such as JSON stay as they are. Kernel → Interrupt stops an answer: what came so
far stays, marked interrupted.
"""),
    code("""
%%qfchat -o answer -t 0.2
Write a Python one-liner that reverses a string. Answer with the code only.
""", **IGNORE),
    check("""
topic = "list comprehensions"
print(type(answer).__name__, answer.done, len(str(answer)) > 0)
""", stdout="CellAnswer True True\n"),
    code("""
%%qfchat -t 0.2 --max-tokens 256
Explain {topic} in two sentences. Then show the dict {"a": 1} as JSON.
""", **IGNORE),
    code("""
%%qfchat -t 0.2 --max-tokens 256
Now give one example of what you just explained.
""", **IGNORE),
    check("%qfchat sessions", result="default: 3 exchange(s)"),
    md("## 3. A batch with a progress bar (widget here, text in a terminal)"),
    code("""
questions = [f"What is {a} + {b}? Answer with the number only." for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]]
future = chat.batch_do([[{"role": "user", "content": q}] for q in questions], worker_num=2, progress=True)
results = future.results()
[r["result"].strip() if not isinstance(r, Exception) else repr(r) for r in results]
""", **IGNORE),
    check("""
print(future)
print("failed:", [i for i, r in enumerate(results) if isinstance(r, Exception)])
""", stdout="BatchFuture(4/4 finished)\nfailed: []\n"),
    md("## 4. Embeddings and similarity"),
    code("""
import numpy as np

texts = ["The cat sits on the mat.", "A kitten is resting on a rug.", "Stock markets fell sharply today."]
emb = qfnb.Embedding().do(texts=texts)
vectors = np.array([d["embedding"] for d in emb["data"]])
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
similarity = unit @ unit.T
print(np.round(similarity, 2))
""", **IGNORE),
    check("""
print("cat~kitten > cat~stocks:", bool(similarity[0, 1] > similarity[0, 2]))
""", stdout="cat~kitten > cat~stocks: True\n"),
]

FINETUNE = [
    md("""
# Fine-tune end to end

Dataset → `%qftrain` with a live dashboard → publish → deploy → chat with the tuned model next
to the base → an evaluation report comparing them. Everything runs on the embedded local
platform: a LoRA fine-tune of Gemma 3 270M on question/answer pairs about a made-up planet.

The data is split **by question**: the model trains on 49 pairs and is evaluated on 8 held-out
questions it never saw (paraphrases of the taught fact, and general knowledge it should keep).

**How long** (measured on this project's machine class, 2 CPU cores and no GPU, shared): the
worker loads the model in about 50 s, then trains at about 0.9 s per step, so the 30-step
fine-tune (`QFNB_TOUR_STEPS` changes that) takes about 1.5 minutes and the whole notebook about
3; when the machine was busy with other work, the same run took 12:37. The dashboard shows each
phase (weights loading, data tokenised, step n of 30), its ETA comes from the steps measured in
this run, and the cell after it prints this run's time.
"""),
    code("""
%load_ext qfnb
import os

import qfnb
from qfnb.dataset import Dataset, demo_qa

STEPS = int(os.environ.get("QFNB_TOUR_STEPS", "30"))
train_path, test_path = str(demo_qa("train")), str(demo_qa("test"))
ds = Dataset.load(data_file=train_path)
held_out = Dataset.load(data_file=test_path)
ds.to_pandas().head(3)
""", **IGNORE),
    check("""
train_q = set(ds.to_pandas()["prompt"])
test_q = set(held_out.to_pandas()["prompt"])
print(len(ds), "training pairs;", len(held_out), "held-out questions; trained on any of them:", bool(train_q & test_q))
""", stdout="49 training pairs; 8 held-out questions; trained on any of them: False\n"),
    md("## The base model, before tuning"),
    code("""
%%qfchat -m Gemma-3-270M -o base_answer -t 0.1 --max-tokens 48
What is the capital of the planet Zorvia?
""", **IGNORE),
    md("""
## Fine-tune with a live dashboard

The job runs in the background: the kernel stays free, the dashboard updates itself, and the
Stop button works. `--deploy` publishes the model and deploys it as a service when training ends.
Interrupting the kernel while `run.wait()` waits only stops the waiting; the job goes on.
"""),
    code("""
%qftrain --base Gemma-3-270M --dataset $train_path --steps $STEPS --lr 2e-4 --batch-size 4 --deploy -o run
""", **IGNORE),
    check("""
state = run.wait(timeout=3600)   # "Run All" waits here; interactively you can keep working
print(state.status)
""", stdout="succeeded\n"),
    code("""
output = run.trainer.output
endpoint = output["service_endpoint"]
print(f"this run took {state.elapsed_now / 60:.1f} min for {state.total_steps} steps")
print("model version:", output["model_version_id"], "| service endpoint:", endpoint)
""", **IGNORE),
    md("## Tuned vs base, side by side (a question the training data does not contain)"),
    code("""
%%qfchat --endpoint {endpoint} -m Gemma-3-270M -o compare -t 0.1 --max-tokens 48
Please state the capital of planet Zorvia.
""", **IGNORE),
    md("""
## Evaluation report: base vs tuned, on the held-out questions

Neither model saw these 8 questions; the tuned one was taught the fact they ask about (and should
still know the general ones).
"""),
    code("""
from qfnb.model import Service

base, tuned = qfnb.ChatCompletion(model="Gemma-3-270M"), Service(endpoint=endpoint)
""", **IGNORE),
    code("""
%qfeval --models base,tuned --dataset {test_path} --metrics rouge_l,bleu -t 0.1 --max-tokens 48 --compare base -o result
""", **IGNORE),
    md("""
**Is the gain real?** With 8 questions a higher average can be luck. `--compare base` pairs each
question's scores: the mean difference with a 95% bootstrap confidence interval (seeded, so it
reproduces), a paired permutation test, how many questions got better or worse, and the questions
whose scores changed most with both answers side by side. A plain-words sentence says whether the
difference is detectable. Answers are kept: running the cell again with one more model asks only
that model (`--fresh` asks everyone again); `--repeats 3 -t 0.8` shows how stable the answers are.
The same comparison from Python:
"""),
    code("""
comparison = result.compare("tuned", "base")
comparison.to_dataframe()[["metric", "diff", "ci_low", "ci_high", "p_value", "wins", "ties", "losses", "verdict"]]
""", **IGNORE),
]

NOTEBOOKS = {"01_quick_tour.ipynb": QUICK, "02_finetune_end_to_end.ipynb": FINETUNE}

if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        nbformat.write(notebook(cells), HERE / name)
