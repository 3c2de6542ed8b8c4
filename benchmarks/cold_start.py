"""Handler cold start: importing each handler module against importing boto3 alone.

The handlers import the shared layer as Lambda gets it: the code built by the layer's own build
(``make -C layers/shared code``, the target ``sam build`` runs), compiled ahead to .pyc, in a
temporary folder. Third-party packages come from the virtualenv, compiled by pip as boto3 is.

Each sample is a fresh interpreter (``python -c``) timed by its CPU time (user + system, so other
work on a shared machine does not count), the figure is the median of 7 samples, and the
budget is 1.5 x ``import boto3`` (issue 13). A handler over budget is reported loudly and
:func:`main` exits non-zero. ``python -m benchmarks.cold_start --why <handler>`` prints the
modules its import spends the most time in (``python -X importtime``), to find what to defer.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = sorted(p.parent.relative_to(ROOT / "functions") for p in (ROOT / "functions").glob("*/*/app.py"))
BUDGET = 1.5  # x import boto3
SAMPLES = 7


_LAYER = ROOT / "layers" / "shared"


@contextmanager
def built_layer() -> Iterator[None]:
    """Build the layer's code as ``sam build`` does (compiled .pyc) and import from it meanwhile."""
    global _LAYER
    with tempfile.TemporaryDirectory(prefix="attune-layer-") as artifacts:
        subprocess.run(
            ["make", "--silent", "--no-print-directory", "-C", str(ROOT / "layers" / "shared"), "code"],
            check=True,
            env={**os.environ, "ARTIFACTS_DIR": artifacts, "LAMBDA_PYTHON": sys.executable},
        )
        previous, _LAYER = _LAYER, Path(artifacts) / "python"
        try:
            yield
        finally:
            _LAYER = previous


def function_environments() -> dict[str, dict[str, str]]:
    """Each function's environment as template.yaml gives it (by its code folder under functions/);
    a value CloudFormation resolves at deploy time (a !Ref, a !Sub) becomes a placeholder."""
    from attune_cli.template import StackResources

    return {
        str(spec.code_uri.relative_to(ROOT / "functions")).rstrip("/"): {
            name: value if isinstance(value, str) else f"bench-{name.lower()}"
            for name, value in spec.environment.items()
        }
        for spec in StackResources.load(ROOT).functions()
    }


def _environment(function: dict[str, str] | None = None) -> dict[str, str]:
    """As on Lambda: the shared layer only on the import path (not the CLI), read-only (nothing is
    compiled and kept between samples), the region, the runtime API variable (so settings are
    validated at import, as in Lambda's init phase) and the function's own environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYDANTIC_", "POWERTOOLS_", "ATTUNE_"))}
    env.update(function or {})
    env["PYTHONPATH"] = str(_LAYER)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:9001"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


def _statement(handler: Path) -> str:
    path = ROOT / "functions" / handler / "app.py"
    return (
        f"import boto3, importlib.util as u; s = u.spec_from_file_location('app', {str(path)!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m)"
    )


def _cpu_seconds(statement: str, function: dict[str, str] | None = None) -> float:
    """CPU time (user + system) of one fresh interpreter running ``statement``: on a shared
    machine wall time measures the neighbours as much as the import."""
    process = subprocess.Popen([sys.executable, "-c", statement], cwd=ROOT, env=_environment(function))
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{statement!r} failed with exit code {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def import_seconds(statement: str, runs: int = SAMPLES, function: dict[str, str] | None = None) -> float:
    return statistics.median(_cpu_seconds(statement, function) for _ in range(runs))


@dataclass(frozen=True)
class Figure:
    handler: str
    seconds: float
    ratio: float

    @property
    def within(self) -> bool:
        return self.ratio <= BUDGET


def measure() -> tuple[float, float, list[Figure]]:
    """(python alone, import boto3, one figure per handler), medians of fresh interpreters."""
    with built_layer():
        return _measure()


# The least any handler of this stack does at init: import boto3, define one pydantic model (a
# constrained field loads the rest of pydantic's machinery) and validate with it once (as each
# function checks its settings), create powertools' Logger and Metrics; no project code. It runs
# with the environment every function shares (template.yaml Globals).
STACK_FLOOR = "; ".join(
    [
        "import boto3",
        "from pydantic import BaseModel, ConfigDict, Field",
        "from aws_lambda_powertools import Logger, Metrics",
        "A = type('A', (BaseModel,), {'__annotations__': {'x': int}, 'x': Field(default=1, ge=1), "
        "'model_config': ConfigDict(defer_build=True)})",
        "A(x=2)",
        "Logger(service='floor')",
        "Metrics(namespace='floor', service='floor')",
    ]
)


def _measure() -> tuple[float, float, list[Figure]]:
    empty = import_seconds("pass")
    baseline = import_seconds("import boto3")
    environments = function_environments()
    shared = dict(set.intersection(*(set(env.items()) for env in environments.values())))
    floor = import_seconds(STACK_FLOOR, function=shared)
    figures = [Figure("(floor: boto3 + pydantic + powertools)", floor, floor / baseline)]
    for handler in HANDLERS:
        seconds = import_seconds(_statement(handler), function=environments[str(handler)])
        figures.append(Figure(str(handler), seconds, seconds / baseline))
    return empty, baseline, figures


def report() -> bool:
    """Print the figures with the budget; False when a handler misses it."""
    empty, baseline, figures = measure()
    print(f"  python alone {empty * 1000:.0f} ms; import boto3 {baseline * 1000:.0f} ms (medians of {SAMPLES})")
    print(f"  budget: each handler <= boto3 x {BUDGET:.2f} ({baseline * BUDGET * 1000:.0f} ms)")
    floor = figures[0].seconds
    for figure in figures:
        verdict = "ok" if figure.within else "OVER BUDGET"
        own = f"floor + {(figure.seconds - floor) * 1000:3.0f} ms" if figure is not figures[0] else ""
        print(
            f"  {figure.handler:<40} {figure.seconds * 1000:5.0f} ms = boto3 x {figure.ratio:.2f} {own:>16}  {verdict}"
        )
    missed = [f.handler for f in figures if not f.within and not f.handler.startswith("(")]
    if missed:
        print(f"  !!! COLD START BUDGET MISSED by {len(missed)} handler(s): {', '.join(missed)}")
    return not missed


def why(handler: str, top: int = 25) -> None:
    """The modules the handler's import spends most time in, beyond what boto3 itself imports."""
    with built_layer():
        _why(handler, top)


def _why(handler: str, top: int) -> None:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _statement(Path(handler))],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=_environment(function_environments()[handler]),
    )
    rows = []
    for line in run.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(1)), int(match.group(2)), match.group(4)))
    for self_us, total_us, name in sorted(rows, reverse=True)[:top]:
        print(f"  self {self_us / 1000:7.1f} ms  cumulative {total_us / 1000:7.1f} ms  {name}")


def main() -> None:
    if not report():
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--why":
        why(sys.argv[2])
    else:
        main()
