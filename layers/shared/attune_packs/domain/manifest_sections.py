"""Sections of pack.yaml with a shape of their own: ``testing`` and ``meta``.

Pure pydantic models; :mod:`attune_packs.domain.manifest` puts them into the manifest.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attune_packs.domain.pack_fields import _entries_error

_URL = re.compile(r"^https?://[^\s]+$")


class TestRunner(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    type: str = Field(pattern=r"^(script|unittest|pytest)$")
    entry_point: str | None = None
    timeout: int = Field(default=300, ge=1, le=3600)
    result_format: str = Field(default="simple", pattern=r"^(simple|json|junit)$")


class Testing(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    enabled: bool = True
    runners: dict[str, TestRunner] = Field(default_factory=dict)
    min_pass_rate: float = Field(default=1.0, ge=0, le=1)
    on_failure: str = Field(default="block", pattern=r"^(block|warn|ignore)$")


class PythonDependencies(BaseModel):
    """Attune's mapping form of ``meta.python_dependencies`` (``runtime``, ``dependencies`` or
    ``requirements_file_content``, ``min_version`` / ``max_version``). The lines are checked like
    ``requirements.txt`` when the environment is planned (:mod:`attune_packs.domain.runtime`)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    runtime: str | None = None
    dependencies: list[str] | None = None
    requirements_file_content: str | None = None
    min_version: str | None = None
    max_version: str | None = None

    def lines(self) -> list[str]:
        if self.requirements_file_content is not None:
            return [line.strip() for line in self.requirements_file_content.splitlines() if line.strip()]
        return list(self.dependencies or [])


class PackMeta(BaseModel):
    """pack.yaml ``meta``: Attune's catalogue fields. Unknown fields are kept (``extra``)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    category: str | None = None
    keywords: list[str] = Field(default_factory=list)
    python_dependencies: list[str] | PythonDependencies | None = Field(
        default=None,
        description="Python requirements: a list of requirement lines, or Attune's mapping form; checked like "
        "requirements.txt (REQUIREMENTS_FORBIDDEN / REQUIREMENTS_INVALID) when the environment is planned",
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
        """Entries must be text; what a line may say is runtime.py's check, the same as for
        requirements.txt, so the same line gets the same refusal whichever file declares it."""
        if not isinstance(value, list):
            return value
        problems = [
            (str(i), f"{line!r} is not a requirement line (text)")
            for i, line in enumerate(value)
            if not isinstance(line, str)
        ]
        if problems:
            raise _entries_error(problems)
        return value

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
