"""``%qfeval``'s flags and their help, in its help's order (IPython builds the magic's parser from them).
Light: no pandas, nothing of the run, so ``%load_ext qfnb`` reads them."""

from __future__ import annotations

from qfnb.notebook._ipython import Decorator, argument, magic_arguments_of, sampling_arguments

__all__ = ["QFEVAL_ARGUMENTS"]

#: ``@magic_arguments()`` with every ``%qfeval`` option
QFEVAL_ARGUMENTS: Decorator = magic_arguments_of(
    argument("result", nargs="?", help="Show this EvaluationResult (or dict name -> result) instead of running one."),
    argument("-m", "--models", "--model", dest="models", action="append",
             help="Models to evaluate, comma-separated: names, ep_... endpoints, or Model/Service variables "
                  "(default: the default chat model)."),
    argument("--endpoint", action="append", help="Endpoint(s) of deployed services (also accepted in --models)."),
    argument("--prompts", action="append", metavar="NAME=PROMPT",
             help="Compare prompts on one --model as models are compared: each PROMPT a notebook variable, a file, "
                  "or a template string with {input} (the item's text; without it the prompt is sent as the "
                  "system prompt). Comma-separated or repeated."),
    argument("-d", "--dataset", help="A .jsonl/.json/.csv path, a platform dataset id, or a Dataset/DataFrame var."),
    argument("--metrics", action="append",
             help="Comma-separated: exact_match, bleu, rouge, rouge_1, rouge_2, rouge_l, similarity, judge, or "
                  "a notebook function fn(input, reference, output) -> float | dict by name "
                  "(default: exact_match,bleu,rouge_l)."),
    argument("--judge", metavar="MODEL", nargs="?", const="",
             help="Also score answers with this model as an LLM judge (judge_score); a bare --judge uses the "
                  "embedded local platform's chat model. A candidate cannot be its own judge."),
    argument("--calibrate", metavar="LABELS", action="append",
             help="With --judge: your own scores of a few answers (about 20), on the judge's scale: a dataset "
                  "column (one model) or TAG=COLUMN per model, empty on the rows you did not label; or a .csv/.jsonl "
                  "file of id, index or input and label (or a column per model). The report gives the judge's "
                  "agreement with them and prediction-powered means."),
    argument("--label", metavar="WIDTH", nargs="?", const="",
             help="With --judge (or --pairwise, two models): label the judged answers yourself in a widget, only "
                  "where the judge is unsure (active labelling, each label weighted by its chance of being "
                  "asked), until the judge's mean corrected by your labels is known: two models, which one wins "
                  "(label which answer is better); one model, to WIDTH on the judge's scale (default a tenth of "
                  "it). The interval holds however often you look; the labels are kept with the evaluation's "
                  "answers (a rerun continues)."),
    argument("--compare", metavar="BASE", help="Compare every other model with BASE, item by item: mean "
             "difference with a 95%% bootstrap CI, McNemar / permutation test (Holm-adjusted), flipped items."),
    argument("--pairwise", metavar="MODEL", nargs="?", const="",
             help="With --compare: a judge picks the better answer of each pair, asked in both orders "
                  "(a disagreement is a tie); bare: the embedded local platform's chat model. With --label and "
                  "two models: you label its verdicts, where its two orders disagree first."),
    argument("--sequential", metavar="MIN_DIFF", nargs="?", const="",
             help="With --compare and two models: draw items in a seeded random order and stop generating once "
                  "the comparison on the first metric is decided (an anytime-valid betting confidence sequence); "
                  "MIN_DIFF tunes it to that difference and lets it decide 'no difference that large'."),
    argument("--plan", metavar="MIN_DIFF",
             help="With --compare: run a pilot (--sample or --limit items, default 20, drawn at random) or read "
                  "the stored result, and say how many items detect a difference of MIN_DIFF on the first metric "
                  "with 80%% power, with the line that runs them (the pilot's items among them)."),
    argument("--forecast", action="store_true",
             help="Before the first call, show what the run will take: input tokens (the model's tokenizer), "
                  "output tokens with a range, price and ETA (qfnb.forecast); the report puts the run beside it. "
                  "With a budget set, a run whose forecast may exceed what is left is refused."),
    argument("--dry-run", action="store_true",
             help="Show the forecast (as --forecast, and what a budget would say) and run nothing."),
    argument("--batch", action="store_true",
             help="Send the generations through the platform's durable batch job (as %%qfbatch; the batch price "
                  "class on the cloud): it goes on through a kernel restart, and this line run again re-attaches "
                  "to it without sending anything twice. The scoring runs when the rows are back (a judge's "
                  "calls are live). Platform chat models only."),
    argument("--target", help="Where --batch's jobs run (implies --batch): local, qianfan or "
                              "ray://HOST:DASHBOARD_PORT (a Ray cluster; the same line again resumes a stopped job). "
                              "Default: QFNB_TARGET, else the configured platform."),
    argument("--repeats", type=int, help="Ask each item N times (with -t): stability across repeats."),
    argument("--recorded", action="append", metavar="TAG=SOURCE",
             help="Score answers already made, without calling a model: a dataset column, a notebook variable "
                  "(what %%qfbatch returned, its -o job), or a batch output .jsonl (prompt + llm_output, or the "
                  "platform's OpenAI-shaped output); comma-separated, repeatable."),
    argument("--fresh", action="store_true",
             help="Ask every model again (answers are otherwise reused from the last runs on the same items)."),
    argument("--limit", type=int, help="Evaluate only the first N rows."),
    argument("--sample", type=int, metavar="N",
             help="Evaluate N rows drawn at random (seeded: the same rows every run, and a larger N keeps a "
                  "smaller one's rows, so their stored answers are reused). --plan's pilot and full run use it."),
    argument("--input-column", help="Column holding the prompts (default: prompt, input, query, ...)."),
    argument("--reference-column", help="Column holding the reference answers (default: response, answer, ...)."),
    sampling_arguments,
    argument("--workers", type=int, help="Concurrent requests per model (default 4)."),
    argument("-o", "--output", help="Store the EvaluationResult in this variable."),
    argument("--chart", default="auto", help="Metric(s) to chart, comma-separated ('auto' = the chosen metrics)."),
)
