"""Every error-code rule has one home, ``qfnb.protocol.errors.CODE_RULES``, and everything that
needs a code set reads it: the exception classes, the default retry sets, the throttle codes,
the poll loop. ``REQUEST_SOURCE`` comes from the version. A scan of the source holds it so."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from qfnb._core import errors as core_errors
from qfnb._core.config import Config
from qfnb._core.errors import KIND_CLASSES, PermissionDeniedError, RateLimitError, api_error
from qfnb._core.http.retry import BatchHealth, RetryPolicy, batch_verdict
from qfnb._core.runtime.poll import PollPlan
from qfnb.protocol import errors as rules
from qfnb.protocol.errors import CODE_RULES, ErrorCode, Kind
from qfnb.protocol.version import REQUEST_SOURCE, __version__
from tests.source_trees import parse_source

QFNB = Path(rules.__file__).resolve().parents[1]


def test_the_official_default_sets_derive_from_the_table() -> None:
    assert sorted(rules.RETRYABLE_INFERENCE_CODES) == [2, 15, 18, 336100, 336501, 336502]
    assert sorted(rules.RETRYABLE_CONSOLE_CODES) == [18, 336100, 500000]
    assert sorted(rules.TOKEN_EXPIRED_CODES) == [110, 111]
    cfg = Config.from_env({})
    assert cfg.llm_api_retry_err_codes == rules.RETRYABLE_INFERENCE_CODES == RetryPolicy().error_codes
    assert cfg.console_api_retry_err_codes == rules.RETRYABLE_CONSOLE_CODES
    assert set(CODE_RULES) == set(ErrorCode) - {ErrorCode.NO_ERROR} | {336006}


def test_every_rate_limit_code_is_a_throttle_code_and_only_those() -> None:
    limits = {code for code in CODE_RULES if isinstance(api_error(code, "x"), RateLimitError)}
    assert rules.THROTTLE_CODES == limits == {4, 17, 18, 19, 336501, 336502}
    retry_19 = RetryPolicy(error_codes=frozenset({19}))
    assert batch_verdict(api_error(19, "total quota"), retry_19, 1, BatchHealth()).throttled


@pytest.mark.parametrize("code", sorted(CODE_RULES))
def test_each_code_raises_the_class_of_its_kind(code: int) -> None:
    assert type(api_error(code, "x")) is KIND_CLASSES[CODE_RULES[code].kind]
    assert type(api_error(str(code), "x")) is KIND_CLASSES[CODE_RULES[code].kind]


def test_v2_codes_name_the_same_kinds() -> None:
    for kind in Kind:
        assert type(api_error(kind.value, "x")) is KIND_CLASSES[kind]
    assert type(api_error("invalid_request_error", "x")) is KIND_CLASSES[Kind.INVALID_ARGUMENT]


def test_the_drawn_error_tree_is_the_table() -> None:
    doc = core_errors.__doc__ or ""
    drawn: dict[str, set[int]] = {}
    for name, codes in re.findall(r"[├└]── (\w+Error)\s+(\d[\d, ]*)", doc):
        drawn[name] = {int(c) for c in codes.replace(",", " ").split()}
    table: dict[str, set[int]] = {}
    for code, rule in CODE_RULES.items():
        table.setdefault(KIND_CLASSES[rule.kind].__name__, set()).add(int(code))
    assert drawn == table


def test_a_transient_code_is_retried_by_the_poll_loop_and_a_permanent_one_is_not() -> None:
    plan: PollPlan[object] = PollPlan(what="task", interval=1.0, timeout=None, retries=3, backoff=None,
                                      retry_on=(Exception,), clock=lambda: 0.0)
    assert plan.failed(api_error(15, "app not found yet")) == 1.0  # retried by default, so here too
    with pytest.raises(PermissionDeniedError):
        plan.failed(api_error(6, "no permission"))


def test_request_source_comes_from_the_version() -> None:
    assert REQUEST_SOURCE.removesuffix(__version__) == "qfnb_py_sdk_v"


def _int_sets(tree: ast.AST) -> list[tuple[int, set[int]]]:
    found = []
    for node in ast.walk(tree):
        items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if isinstance(node, ast.Set | ast.List | ast.Tuple | ast.Dict) and items and len(items) >= 2:
            values = {n.value for n in items if isinstance(n, ast.Constant) and type(n.value) is int}
            if len(values) == len(items):
                found.append((node.lineno, values))
    return found


def test_each_table_has_exactly_one_definition() -> None:
    """No code set, HTTP-status set or request source is written out anywhere but its home."""
    codes = {int(c) for c in CODE_RULES}
    homes: dict[str, list[str]] = {"codes": [], "statuses": [], "request_source": []}
    for path in sorted(QFNB.rglob("*.py")):
        rel = path.relative_to(QFNB.parent).as_posix()
        tree = parse_source(path.read_text(encoding="utf-8"))
        for line, values in _int_sets(tree):
            if values <= codes and (max(values) >= 336000 or {110, 111} <= values):
                homes["codes"].append(f"{rel}:{line}")
            if {408, 425, 429} <= values:
                homes["statuses"].append(f"{rel}:{line}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "qfnb_py_sdk" in node.value:
                homes["request_source"].append(f"{rel}:{node.lineno}")
    assert homes["codes"] == []  # the table is keyed by ErrorCode names; no literal code set anywhere
    assert [h.split(":")[0] for h in homes["statuses"]] == ["qfnb/protocol/errors.py"]
    assert [h.split(":")[0] for h in homes["request_source"]] == ["qfnb/protocol/version.py"]
