"""bce-auth-v1 signing: the reference test vector, and verification round trips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qfnb.protocol.wires.qianfan.signing import (
    SignatureError,
    bce_date,
    canonical_request,
    parse_authorization,
    same_secret,
    sign,
    uri_encode,
    verify,
)

HEADERS = {
    "Content-Type": "application/json",
    "Host": "qianfan.baidubce.com",
    "request-source": "qianfan_py_sdk_v0.4.12.3",
    "x-bce-date": "2024-01-01T00:00:00Z",
}
PARAMS = {"Action": "DescribeFineTuningTask"}
EXPECTED = ("bce-auth-v1/AK_EXAMPLE/2024-01-01T00:00:00Z/300/content-type;host;request-source;x-bce-date/"
            "2e5a69a3d50d802c04f79c8240882355e504ae860cfbc5bdf05104c3a269c03e")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_reference_vector() -> None:
    assert sign("POST", "/v2/finetuning", PARAMS, HEADERS, "AK_EXAMPLE", "SK_EXAMPLE",
                "2024-01-01T00:00:00Z") == EXPECTED
    assert sign("post", "/v2/finetuning", PARAMS, HEADERS, "AK_EXAMPLE", "SK_EXAMPLE", T0) == EXPECTED


def test_reference_canonical_request() -> None:
    text, names = canonical_request("POST", "/v2/finetuning", PARAMS, HEADERS)
    assert text == ("POST\n/v2/finetuning\nAction=DescribeFineTuningTask\n"
                    "content-type:application%2Fjson\nhost:qianfan.baidubce.com\n"
                    "request-source:qianfan_py_sdk_v0.4.12.3\nx-bce-date:2024-01-01T00%3A00%3A00Z")
    assert names == ["content-type", "host", "request-source", "x-bce-date"]


def test_uri_encode() -> None:
    assert uri_encode("a b/c~d-e_f.g") == "a%20b%2Fc~d-e_f.g"
    assert uri_encode("a/b", encode_slash=False) == "a/b"
    assert uri_encode("中") == "%E4%B8%AD"
    assert uri_encode(None) == ""
    assert bce_date(0) == "1970-01-01T00:00:00Z"


def test_header_order_and_case_do_not_matter() -> None:
    shuffled = {k.upper(): v for k, v in reversed(list(HEADERS.items()))}
    assert sign("POST", "/v2/finetuning", PARAMS, shuffled, "AK_EXAMPLE", "SK_EXAMPLE", T0) == EXPECTED


def test_verify_round_trip_and_tamper() -> None:
    headers = dict(HEADERS, Authorization=EXPECTED, **{"Content-Length": "12", "User-Agent": "x"})
    auth = verify("POST", "/v2/finetuning", PARAMS, headers, {"AK_EXAMPLE": "SK_EXAMPLE"}.get, now=T0)
    assert auth.access_key == "AK_EXAMPLE"
    assert "2e5a69" not in repr(auth)
    with pytest.raises(SignatureError, match="does not match"):
        verify("POST", "/v2/finetuning", {"Action": "StopFineTuningTask"}, headers, "SK_EXAMPLE", now=T0)
    with pytest.raises(SignatureError, match="does not match"):
        verify("POST", "/v2/finetuning", PARAMS, headers, "WRONG", now=T0)
    with pytest.raises(SignatureError, match="unknown access key"):
        verify("POST", "/v2/finetuning", PARAMS, headers, {}.get, now=T0)
    with pytest.raises(SignatureError, match="expired"):
        verify("POST", "/v2/finetuning", PARAMS, headers, "SK_EXAMPLE", now=T0.timestamp() + 3600)
    with pytest.raises(SignatureError, match="missing"):
        verify("POST", "/v2/finetuning", PARAMS, {k: v for k, v in headers.items() if k != "Host"},
               "SK_EXAMPLE", now=T0)


def test_a_non_ascii_signature_does_not_match_rather_than_raise_type_error() -> None:
    """A header's text may hold any character; ``hmac.compare_digest`` raises TypeError on a non-ASCII ``str``."""
    forged = dict(HEADERS, Authorization=EXPECTED[:-64] + "é" * 64)
    with pytest.raises(SignatureError, match="does not match"):
        verify("POST", "/v2/finetuning", PARAMS, forged, "SK_EXAMPLE", now=T0)
    assert same_secret("é", "é") and not same_secret("é", "e") and not same_secret("\udcff", "x")


@pytest.mark.parametrize("bad", ["", "Bearer x", "bce-auth-v1/ak/2024-01-01T00:00:00Z/abc/host/sig",
                                 "bce-auth-v1/ak/yesterday/300/host/sig", "bce-auth-v1//2024-01-01T00:00:00Z/300/h/s"])
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(SignatureError):
        parse_authorization(bad)
