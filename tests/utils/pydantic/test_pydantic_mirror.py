"""The official SDK's ``qianfan.utils.pydantic`` mirror (:mod:`qfnb.utils.pydantic`): pydantic 2's own names."""

from __future__ import annotations

import pydantic
import pytest

from qfnb.utils.pydantic import BaseModel, ConfigDict, Field, model_validator


class Rows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=0)

    @model_validator(mode="after")
    def small(self) -> Rows:
        if self.count > 10:
            raise ValueError("count: at most 10")
        return self


def test_the_mirror_gives_pydantics_own_classes_and_they_validate() -> None:
    assert BaseModel is pydantic.BaseModel
    assert Rows(count=3).count == 3
    for bad in ({"count": -1}, {"count": 11}, {"count": 1, "other": 0}):
        with pytest.raises(pydantic.ValidationError):
            Rows(**bad)
