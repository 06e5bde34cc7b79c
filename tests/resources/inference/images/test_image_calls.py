"""The image calls (qfnb.resources.inference.images) against the cloud double: Text2Image's images decoded
from base64 and its size checked by name before sending, Image2Text's image sent as base64 to its endpoint
and its batch items read as (prompt, image) pairs."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from qfnb._core.config import Config
from qfnb.errors import ValidationError
from qfnb.resources.inference import Image2Text, Text2Image
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401
from tests.fakes.inference_extra import install

MakeConfig = Callable[..., Config]


def test_text2image_decode(fake: FakeQianfan, make_config: MakeConfig) -> None:  # noqa: F811
    t2i = Text2Image(config=make_config("oauth"))
    resp = t2i.do(prompt="Rag doll cat", with_decode="base64", n=2)
    assert resp["body"]["data"][0]["image"] == b"\x89PNG fake Rag doll cat" and len(resp["data"]) == 2
    assert fake.calls("/text2image/sd_xl")[0].json["stream"] is False  # as the official SDK sends it
    with pytest.raises(ValidationError) as info:
        t2i.do(prompt="cat", size="big")
    assert info.value.field == "size"


def test_image2text_sends_base64_and_needs_an_endpoint(fake: FakeQianfan, make_config: MakeConfig) -> None:  # noqa: F811
    install(fake)
    cfg = make_config("both")
    raw = b"\x89PNG fake image bytes"
    resp = Image2Text(endpoint="my_i2t", config=cfg).do(prompt="what is it?", image=raw)
    assert resp["result"] == f"an image of {len(raw)} bytes; asked: what is it?"
    call = fake.calls("/image2text/")[-1]
    assert call.path.endswith("/image2text/my_i2t") and base64.b64decode(call.json["image"]) == raw
    with pytest.raises(ValidationError, match="image"):
        Image2Text(endpoint="my_i2t", config=cfg).do(prompt="p", image=None)


def test_image2text_batch_items_are_prompt_image_pairs() -> None:
    i2t = Image2Text(endpoint="ep")
    assert i2t._batch_item(("what?", "aW1n")) == {"prompt": "what?", "image": "aW1n"}
    with pytest.raises(ValidationError) as info:
        i2t._batch_item("just a prompt")
    assert info.value.field == "input_list"
