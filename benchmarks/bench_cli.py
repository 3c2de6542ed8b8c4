"""CLI latency on a warm local stack, against a `python -c pass` baseline, with budgets.

A local service is started on a fresh state dir and filled: the example packs (with their Python
environment), PACKS generated small packs, and one pack of ACTIONS actions. Then each command runs
as a user runs it (a new process: `python -m attune_cli.main ...`), RUNS times; the median is
compared with its budget:

    list, show, status, components   <= 0.5 s    (read-only commands, whatever is installed)
    install of an unchanged pack     <= 3 s

Also shown, without a budget: ``python -c "import attune_cli.main"`` (what every command pays before
it asks the stack anything).

Sizes: BENCH_CLI_PACKS (default 150) and BENCH_CLI_ACTIONS (default 3581). A missed budget
fails the run (exit status 1) after every figure is printed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
READ_BUDGET = 0.5
INSTALL_UNCHANGED_BUDGET = 3.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    paths = [str(ROOT / "layers" / "shared"), str(ROOT / "cli"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _archive(folder: Path, ref: str, version: str, actions: int) -> Path:
    files = {"pack.yaml": f'ref: {ref}\nversion: "{version}"\ndescription: cli benchmark pack {ref}\n'}
    files["actions/run.py"] = "def run():\n    return 1\n"
    for i in range(actions):
        files[f"actions/a{i:04}.yaml"] = f"name: a{i:04}\nrunner_type: python-script\nentry_point: run.py\n"
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed, tarfile.open(fileobj=packed, mode="w") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"{ref}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = folder / f"{ref}-{version}.tar.gz"
    path.write_bytes(out.getvalue())
    return path


class Cli:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = _env()

    def run(self, *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
        command = [sys.executable, "-m", "attune_cli.main", *args, "--state-dir", str(self.state)]
        started = time.perf_counter()
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=3600, check=False)  # noqa: S603
        elapsed = time.perf_counter() - started
        if check and done.returncode != 0:
            raise SystemExit(f"bench_cli: {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return elapsed, done

    def median(self, *args: str) -> float:
        return statistics.median(self.run(*args)[0] for _ in range(RUNS))


def _baseline(code: str = "pass", env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)  # noqa: S603
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _fill(cli: Cli, folder: Path, packs: int, actions: int) -> str:
    """Installs the examples, the small packs and the large pack; returns an installation id."""
    index = str(ROOT / "examples" / "index.json")
    started = time.perf_counter()
    cli.run("install", "-q", "--registry", index, "notify_slack", "http_tools")
    print(f"   examples installed (with their environment) in {time.perf_counter() - started:.1f}s", flush=True)
    small = [str(_archive(folder, f"small_{i:03}", "1.0.0", 2)) for i in range(packs)]
    started = time.perf_counter()
    for at in range(0, len(small), 50):
        cli.run("install", "-q", "--skip-env-build", *small[at : at + 50])
    print(f"   {packs} small packs installed in {time.perf_counter() - started:.1f}s", flush=True)
    big = _archive(folder, "big", "1.0.0", actions)
    elapsed, done = cli.run("install", "--json", "-q", "--skip-env-build", str(big))
    print(f"   a pack of {actions} actions installed in {elapsed:.1f}s", flush=True)
    return str(json.loads(done.stdout)["installation_id"])


def main() -> None:
    packs = int(os.environ.get("BENCH_CLI_PACKS", "150"))
    actions = int(os.environ.get("BENCH_CLI_ACTIONS", "3581"))
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        folder = Path(tmp)
        cli = Cli(folder / "state")
        started = time.perf_counter()
        cli.run("local", "start")
        print(f"   local stack started in {time.perf_counter() - started:.1f}s", flush=True)
        try:
            installation = _fill(cli, folder, packs, actions)
            figures = _measure(cli, installation, actions)
        finally:
            cli.run("local", "stop", check=False)
    missed = _report(figures)
    if missed:
        raise SystemExit(f"bench_cli: BUDGET MISSED: {', '.join(missed)}")


def _measure(cli: Cli, installation: str, actions: int) -> list[tuple[str, float, float]]:
    baseline = _baseline()
    figures = [("python -c pass (baseline)", baseline, float("nan"))]
    # what every command pays before it asks anything: the interpreter and the CLI's imports
    figures.append(("import attune_cli.main", _baseline("import attune_cli.main", cli.env), float("nan")))
    for label, args in (
        ("list", ("list",)),
        ("show http_tools", ("show", "http_tools")),
        (f"show big ({actions} actions)", ("show", "big", "--json")),
        ("status <installation>", ("status", installation)),
        ("components actions --limit 50", ("components", "actions", "--limit", "50")),
    ):
        figures.append((label, cli.median(*args), READ_BUDGET))
    index = str(ROOT / "examples" / "index.json")
    figures.append(
        (
            "install unchanged (examples)",
            cli.median("install", "-q", "--registry", index, "notify_slack"),
            INSTALL_UNCHANGED_BUDGET,
        )
    )
    return figures


def _report(figures: list[tuple[str, float, float]]) -> list[str]:
    baseline = figures[0][1]
    print(f"   {'command':<34} {'median':>8} {'over baseline':>14} {'budget':>8}")
    missed = []
    for label, seconds, budget in figures:
        over = "" if label.startswith("python") else f"{seconds - baseline:+.3f}s"
        verdict = "" if budget != budget else ("ok" if seconds <= budget else "MISSED")
        shown = "" if budget != budget else f"{budget:.1f}s"
        print(f"   {label:<34} {seconds:>7.3f}s {over:>14} {shown:>8}  {verdict}")
        if verdict == "MISSED":
            missed.append(f"{label} {seconds:.2f}s > {budget:.1f}s")
    return missed


if __name__ == "__main__":
    main()
