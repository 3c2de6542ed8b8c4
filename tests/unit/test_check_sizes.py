"""``make lint`` bounds production code: modules of at most 600 lines, functions of at most 80."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("check_sizes", ROOT / "scripts" / "check_sizes.py")
assert _SPEC and _SPEC.loader
check_sizes = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check_sizes)


def test_a_long_function_and_a_long_module_are_named(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    long_function = tmp_path / "long_function.py"
    long_function.write_text(f"def too_long():\n{body}\n")
    long_module = tmp_path / "long_module.py"
    long_module.write_text("".join(f"X{i} = {i}\n" for i in range(601)))

    assert list(check_sizes.offences(long_function)) == [
        f"{long_function}:1: too_long is 86 lines (at most 80 a function)"
    ]
    assert list(check_sizes.offences(long_module)) == [f"{long_module}: 601 lines (at most 600 a module)"]
    assert check_sizes.main([str(tmp_path)]) == 1


def test_code_within_the_bounds_passes(tmp_path: Path) -> None:
    fine = tmp_path / "fine.py"
    fine.write_text("def short():\n    return 1\n")
    assert list(check_sizes.offences(fine)) == []
    assert check_sizes.main([str(tmp_path)]) == 0
