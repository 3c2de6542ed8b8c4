"""Download a 500 MB pack archive from a loopback HTTP server into S3 (moto) and measure memory and speed.

Everything that is not the downloader runs in its own process, so the downloader's peak RSS is its
own: the HTTP server (``python -m http.server``), S3 (``moto_server``), and the downloader itself (a
child that only downloads and reports its ``VmHWM``). Figures printed:

* ``sha256sum``: the raw hashing throughput of the same file on this machine (the yardstick);
* ``net + sha256``: :class:`attune_packs.sources.http.HttpClient` streaming the file and hashing it (the
  network layer alone: checks, pinning, deadline, byte cap);
* ``download stage``: :func:`attune_packs.services.stages.download.download_packs` end to end (HTTP ->
  multipart staging upload while hashing -> archive scan read back from S3 -> content-addressed
  copy), against moto.

``python -m benchmarks download`` (or ``make bench BENCH=download``). The archive is generated once
into ``$ATTUNE_BENCH_DIR`` (default: the system temp folder) and reused.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testkit.pack_archives import Content, stream, write_tar_gz

ROOT = Path(__file__).resolve().parents[1]
TARGET_BYTES = 500 * 10**6  # "500 MB"
FILE_BYTES = 100 * 2**20  # each member below the 128 MiB one-file limit
PACK_YAML = b'ref: bench_big\nversion: "1.0.0"\ndescription: a 500 MB benchmark pack\n'


def _archive(folder: Path) -> Path:
    """A tar.gz of about 500 MB of incompressible data with a valid pack.yaml (made once)."""
    path = folder / "bench_big-1.0.0.tar.gz"
    if path.exists() and path.stat().st_size >= TARGET_BYTES:
        return path
    members: list[tuple[str, Content]] = [("bench_big/pack.yaml", PACK_YAML)]
    written, index = 0, 0
    while written < TARGET_BYTES:
        size = min(FILE_BYTES, TARGET_BYTES - written + 2**20)
        members.append((f"bench_big/data/blob{index:02d}.bin", stream(_RandomFile(size), size)))
        written += size
        index += 1
    partial = write_tar_gz(path.with_suffix(".partial"), members, level=1)
    partial.rename(path)
    return path


class _RandomFile(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self.left, 2**20)
        buffer[:size] = os.urandom(size)
        self.left -= size
        return size


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def _process(args: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def _sha256sum_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    return time.perf_counter() - started


def _child(mode: str, url: str, endpoint: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; it reports its own figures as JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}
    env.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_download", "--child", mode, url, endpoint],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


class _TimedStore:
    """The real S3 store, timing each phase of the stage (download+upload, read back for the scan, copy)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.bucket = store.bucket
        self.seconds: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        label = {"upload_stream": "download+upload", "open": "scan (S3 read)", "copy": "copy"}.get(name)
        if label is None:
            return method

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = method(*args, **kwargs)
            if name != "open":
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
                return result
            return _TimedBody(result, self.seconds, label)

        return timed


class _TimedBody:
    def __init__(self, body: Any, seconds: dict[str, float], label: str) -> None:
        self._body, self._seconds, self._label = body, seconds, label
        self._started = time.perf_counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)

    def __enter__(self) -> Any:
        return self._body

    def __exit__(self, *exc: Any) -> None:
        self._body.close()
        self._seconds[self._label] = self._seconds.get(self._label, 0.0) + time.perf_counter() - self._started


def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _run_child(mode: str, url: str, endpoint: str) -> None:
    import hashlib

    import boto3

    from attune_packs.adapters.s3 import S3ObjectStore
    from attune_packs.models import DownloadRequest
    from attune_packs.services.stages.download import download_packs
    from attune_packs.settings import Settings
    from attune_packs.sources.http import Deadline, HttpClient, NetworkPolicy

    settings = Settings.model_validate(
        {"BUCKET_NAME": "bench", "DOWNLOAD_ALLOW_NETWORKS": "127.0.0.0/8", "DOWNLOAD_ALLOW_HTTP": "true"}
    )
    s3 = boto3.client("s3", endpoint_url=endpoint)
    if mode == "stage":
        s3.create_bucket(Bucket="bench")
    baseline = _memory_kib("VmRSS")
    started = time.perf_counter()
    if mode == "net":
        digest = hashlib.sha256()
        http = HttpClient(NetworkPolicy.from_settings(settings))
        with http.open(url, deadline=Deadline(900), max_bytes=settings.max_archive_bytes) as response:
            while chunk := response.read(8 * 2**20):
                digest.update(chunk)
        result: dict[str, Any] = {"sha256": digest.hexdigest()}
    else:
        store = _TimedStore(S3ObjectStore(s3, "bench"))
        response = download_packs(DownloadRequest(packs=[url], timeout=900), store, settings)  # type: ignore[arg-type]
        if response.failed_packs:
            raise RuntimeError(response.failed_packs[0].error)
        result = {"sha256": response.downloaded_packs[0].checksum.removeprefix("sha256:"), "phases": store.seconds}
    result.update(seconds=time.perf_counter() - started, baseline_kib=baseline, peak_kib=_memory_kib("VmHWM"))
    print(json.dumps(result))


def main() -> None:
    folder = Path(os.environ.get("ATTUNE_BENCH_DIR", tempfile.gettempdir())) / "attune-bench"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    archive = _archive(folder)
    size = archive.stat().st_size
    print(f"   archive: {size / 1e6:.0f} MB ({archive}; ready in {time.perf_counter() - started:.1f}s)", flush=True)
    mb = size / 1e6

    hashing = min(_sha256sum_seconds(archive) for _ in range(2))
    print(f"   sha256sum            {mb / hashing:7.0f} MB/s  ({hashing:.2f}s)", flush=True)

    web_port, s3_port = _free_port(), _free_port()
    web = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder), str(web_port)]
    moto = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
    url = f"http://127.0.0.1:{web_port}/{archive.name}"
    endpoint = f"http://127.0.0.1:{s3_port}"
    with _process(web, web_port), _process(moto, s3_port):
        for mode, label in (("net", "net + sha256"), ("stage", "download stage")):
            figures = _child(mode, url, endpoint)
            seconds = figures["seconds"]
            peak, baseline = figures["peak_kib"] / 1024, figures["baseline_kib"] / 1024
            print(
                f"   {label:<20} {mb / seconds:7.0f} MB/s  ({seconds:.2f}s, {hashing / seconds:.2f}x sha256sum)  "
                f"peak RSS {peak:.0f} MiB (after imports {baseline:.0f} MiB)",
                flush=True,
            )
            for phase, spent in figures.get("phases", {}).items():
                print(f"      {phase:<18} {mb / spent:7.0f} MB/s  ({spent:.2f}s)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _run_child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
