"""Runs unittest discovery inside the target interpreter and records each test's outcome as JSON
(``{"tests": [{"name", "status", "message"}]}``). A standalone script (standard library only):
``python unittest_worker.py START PATTERN TOP OUT``."""

from __future__ import annotations

import json
import os
import sys
import unittest
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

MAX_NAME_CHARS = 300
MAX_MESSAGE_CHARS = 500


def _case(name: str, status: str, message: str = "") -> dict[str, str]:
    return {"name": str(name)[:MAX_NAME_CHARS], "status": status, "message": str(message or "")[:MAX_MESSAGE_CHARS]}


def _exception_text(err: OptExcInfo) -> str:
    kind, value = err[0], err[1]
    return f"{getattr(kind, '__name__', kind)}: {value}"


class Recorder(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.cases: list[dict[str, str]] = []

    def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802 - unittest's API
        self.cases.append(_case(test.id(), "passed"))

    def addFailure(self, test: unittest.TestCase, err: OptExcInfo) -> None:  # noqa: N802
        self.cases.append(_case(test.id(), "failed", _exception_text(err)))

    def addError(self, test: unittest.TestCase, err: OptExcInfo) -> None:  # noqa: N802
        self.cases.append(_case(test.id(), "failed", _exception_text(err)))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:  # noqa: N802
        self.cases.append(_case(test.id(), "skipped", reason))

    def addExpectedFailure(self, test: unittest.TestCase, err: OptExcInfo) -> None:  # noqa: N802
        self.cases.append(_case(test.id(), "passed"))

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802
        self.cases.append(_case(test.id(), "failed", "unexpected success"))

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: OptExcInfo | None) -> None:  # noqa: N802
        if err is not None:
            self.cases.append(_case(subtest.id(), "failed", _exception_text(err)))


def unittest_worker(start: str, pattern: str, top: str, out: str) -> int:
    # A tests folder that is a package is imported from the pack root (relative imports work);
    # a plain folder is its own top level, as ``python -m unittest discover -s <folder>`` does.
    if not os.path.exists(os.path.join(start, "__init__.py")):
        top = start
    recorder = Recorder()
    unittest.defaultTestLoader.discover(start, pattern=pattern, top_level_dir=top).run(recorder)
    with open(out, "w") as handle:
        json.dump({"tests": recorder.cases}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(unittest_worker(*sys.argv[1:5]))
