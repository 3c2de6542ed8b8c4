"""One bad file, or one bug, fails one pack: the rest of the batch is registered.

Every kind of error is thrown at each stage through the real state machine on the local stack:
a typed error (what the stages raise on purpose), unexpected exceptions (bugs: reported for that
pack as INTERNAL_ERROR with the exception type), a pydantic validation error, and a transient
fault that passes on the state machine's retry (then nothing fails). Errors are injected by
patching the function each stage calls for one pack; production code is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness
from pydantic import BaseModel

from attune_cli.render import install_report
from attune_packs.errors import ManifestError, ThrottledError
from attune_packs.services.stages import build_envs, dependencies, download
from attune_packs.services.stages.register import run as register_run
from testkit.pack_archives import pack_files, write_pack

pytestmark = pytest.mark.slow

GOOD = ("alpha", "beta")


class _Strict(BaseModel):
    count: int


def _validation_error() -> Exception:
    try:
        _Strict.model_validate({"count": "many"})
    except Exception as exc:  # noqa: BLE001 - the pydantic error object itself is wanted
        return exc
    raise AssertionError("pydantic accepted a bad value")


# pack -> (the exception it meets, the error code it ends with, the exception type reported)
KINDS: dict[str, tuple[Callable[[], Exception], str, str | None]] = {
    "typed": (lambda: ManifestError("actions/x.yaml: broken", error_code="MANIFEST_INVALID"), "MANIFEST_INVALID", None),
    "keyerror": (lambda: KeyError("boom"), "INTERNAL_ERROR", "KeyError"),
    "typeerror": (lambda: TypeError("unsupported operand"), "INTERNAL_ERROR", "TypeError"),
    "validation": (_validation_error, "INTERNAL_ERROR", "ValidationError"),
}
FLAKY = "flaky"  # meets ThrottledError once; the stage is retried and the pack registered


def _faulty(original: Callable[..., Any], ref_of: Callable[..., str]) -> Callable[..., Any]:
    thrown: set[str] = set()

    def patched(*args: Any, **kwargs: Any) -> Any:
        ref = ref_of(*args, **kwargs)
        if ref in KINDS:
            raise KINDS[ref][0]()
        if ref == FLAKY and ref not in thrown:
            thrown.add(ref)
            raise ThrottledError("Rate exceeded (injected)")
        return original(*args, **kwargs)

    return patched


def _ref_in_source(source: str, *_: Any, **__: Any) -> str:
    return next((ref for ref in [*KINDS, FLAKY] if f"/{ref}-" in source), "")


# stage -> (module, function the per-pack loop calls, how the pack is named in its arguments)
INJECTION: dict[str, tuple[Any, str, Callable[..., str]]] = {
    "download": (download, "_download_one", _ref_in_source),
    "dependencies": (dependencies, "runtime_requirements", lambda contents, *_: contents.ref),
    "build": (build_envs, "prepare", lambda pack, *_: pack.contents.ref),
    "register": (register_run, "_register_one", lambda pack, *_: pack.contents.ref),
}


def _failures(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The last word per pack (a failed build is failed again at registration: the later one);
    a pack that failed before its manifest was read is named by its archive."""
    archives = {d["archive"]: d["pack_ref"] for d in report["downloaded"]}
    named = {}
    for failure in report["failures"]:
        source = str(failure.get("source") or "")
        ref = failure.get("pack_ref") or archives.get(source) or _ref_in_source(source) or source
        named[ref] = failure
    return named


@pytest.mark.parametrize("stage", list(INJECTION))
def test_every_kind_of_error_at_each_stage_fails_only_its_pack(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # Given packs that each meet a different kind of error in one stage (all need an environment,
    # so every one of them reaches the build stage; the cached build answers at once)
    module, name, ref_of = INJECTION[stage]
    monkeypatch.setattr(module, name, _faulty(getattr(module, name), ref_of))
    needs_build = {"requirements": ""} if stage == "build" else {}
    archives = [str(write_pack(tmp_path, ref)) for ref in GOOD]
    archives += [str(write_pack(tmp_path, ref, files=pack_files(ref, **needs_build))) for ref in [*KINDS, FLAKY]]

    # When they are installed together
    result = harness.install(*archives)

    # Then the installation succeeded, partially: the good packs are registered, and the flaky
    # one too where the stage is retried as a whole (download reports it retriable instead)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    report = install_report("x", result)
    assert report["outcome"] == "partial"
    failures = _failures(report)
    if stage == "download":
        flaky = failures.pop(FLAKY)
        assert (flaky["error_code"], flaky["retriable"]) == ("THROTTLED", True)
        assert sorted(p["pack_ref"] for p in report["registered"]) == sorted(GOOD)
    else:
        assert sorted(p["pack_ref"] for p in report["registered"]) == sorted([*GOOD, FLAKY])
    # And each bad pack failed with its code; a bug names its exception type
    assert set(failures) == set(KINDS), failures
    for ref, (_, code, exception_type) in KINDS.items():
        if stage == "build" and code != "INTERNAL_ERROR":
            code = "BUILD_FAILED"  # a Map item's typed error: the environment could not be built (type named)
        assert failures[ref]["error_code"] == code, failures[ref]
        if exception_type:
            assert exception_type in failures[ref]["error"], failures[ref]
    # And nothing of a failed pack is in the registry
    for ref in KINDS:
        assert harness.table.get_item(f"PACK#{ref}", "CURRENT") is None


def test_a_duplicate_key_in_one_action_file_fails_that_pack_alone(harness: Harness, tmp_path: Path) -> None:
    # Given four packs, one with a duplicate key in one of its action files
    broken = "name: dup\nrunner_type: python-script\nentry_point: hello.py\nname: again\n"
    archives = [str(write_pack(tmp_path, ref)) for ref in ("alpha", "beta", "gamma")]
    archives.append(str(write_pack(tmp_path, "delta", files=pack_files("delta", extra={"actions/dup.yaml": broken}))))

    # When they are installed together
    result = harness.install(*archives)

    # Then three are registered, one failed with the file and line, and the installation SUCCEEDED (partial)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    report = install_report("x", result)
    assert (report["status"], report["outcome"]) == ("SUCCEEDED", "partial")
    assert sorted(p["pack_ref"] for p in report["registered"]) == ["alpha", "beta", "gamma"]
    [failure] = report["failures"]
    assert failure["source"].endswith("delta-1.0.0.tar.gz")
    assert failure["error_code"] == "MANIFEST_DUPLICATE_KEY"
    [problem] = failure["details"]
    assert (problem["file"], problem["line"], problem["column"]) == ("actions/dup.yaml", 4, 1)
    assert "actions/dup.yaml: line 4" in failure["error"]
