"""Sections of pack.yaml with a shape of their own: ``testing`` and ``meta``.

Pure pydantic models; :mod:`attune_packs.domain.manifest` puts them into the manifest.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attune_packs.domain.pack_fields import _entries_error

# A Python requirement written in meta.python_dependencies: one requirement, no pip options.
_REQUIREMENT_LINE = re.compile(r"^[A-Za-z0-9][^\s;#]*")
_URL = re.compile(r"^https?://[^\s]+$")


class TestRunner(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(pattern=r"^(script|unittest|pytest)$")
    entry_point: str | None = None
    timeout: int = Field(default=300, ge=1, le=3600)
    result_format: str = Field(default="simple", pattern=r"^(simple|json|junit)$")


class Testing(BaseModel):
    model_config = ConfigDict(extra="allow")
    enabled: bool = True
    runners: dict[str, TestRunner] = Field(default_factory=dict)
    min_pass_rate: float = Field(default=1.0, ge=0, le=1)
    on_failure: str = Field(default="block", pattern=r"^(block|warn|ignore)$")


class PackMeta(BaseModel):
    """pack.yaml ``meta``: Attune's catalogue fields. Unknown fields are kept (``extra``)."""

    model_config = ConfigDict(extra="allow")

    category: str | None = None
    keywords: list[str] = Field(default_factory=list)
    python_dependencies: list[str] = Field(
        default_factory=list, description="Python requirements, one per entry, like lines of requirements.txt"
    )
    documentation_url: str | None = None
    repository_url: str | None = None

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: Any) -> Any:
        return _labels(value)

    @field_validator("python_dependencies", mode="before")
    @classmethod
    def _python_dependencies(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        problems: list[tuple[str, str]] = []
        for index, line in enumerate(value):
            if not isinstance(line, str) or not _REQUIREMENT_LINE.match(line.strip()) or "\n" in line:
                problems.append(
                    (str(index), f"{line!r} is not a requirement like 'requests>=2.28' (pip options belong nowhere)")
                )
        if problems:
            raise _entries_error(problems)
        return [line.strip() for line in value]

    @field_validator("documentation_url", "repository_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.fullmatch(value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


def _labels(value: Any) -> Any:
    """Keywords and tags are labels: a number written unquoted ("- 365") is kept as its text."""
    if isinstance(value, list):
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
    return value
