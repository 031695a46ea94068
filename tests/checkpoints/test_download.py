"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, verification, locking,
cancellation, offline mode, the cache's fast path and Hugging Face ids."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import socket
import sys
import threading
import time
import types
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from napari_sam2.checkpoints import checksums, registry, transfer
from napari_sam2.checkpoints.download import DownloadError, download_checkpoint, ensure_checkpoint
from napari_sam2.checkpoints.files import CheckpointError
from napari_sam2.checkpoints.hf_hub import resolve_hf_id
from napari_sam2.checkpoints.registry import (
    OFFICIAL_CHECKPOINTS,
    CheckpointInfo,
    register_checkpoint,
)
from napari_sam2.progress import Cancelled, TextProgress

FILENAME = "sam2.1_hiera_tiny.pt"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        plan: _Plan = self.server.plan  # type: ignore[attr-defined]
        with plan.lock:
            index = len(plan.requests)
            plan.requests.append({"path": self.path, "range": self.headers.get("Range")})
            status = plan.statuses.pop(0) if plan.statuses else None
            limit = plan.drop_after.pop(0) if plan.drop_after else None
            stall = plan.stall_first if index == 0 else 0.0
        if index >= plan.max_requests or time.monotonic() > plan.deadline:
            self.send_error(503)
            return
        if self.path != plan.path:
            self.send_error(404)
            return
        if status is not None:
            self.send_error(status)
            return
        time.sleep(stall)
        try:
            self._send_body(plan, limit)
        except OSError:  # the client went away (cancelled, timed out)
            pass

    def _send_body(self, plan: _Plan, limit: int | None) -> None:
        start, wanted = 0, self.headers.get("Range")
        if wanted and not plan.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(plan.data) - 1}/{len(plan.data)}"
            )
        else:
            self.send_response(200)
        body = plan.data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if limit is not None:
            body = body[:limit]  # then close the connection early: a dropped download
        for offset in range(0, len(body), plan.chunk):
            self.wfile.write(body[offset : offset + plan.chunk])
            self.wfile.flush()
            if plan.delay:
                time.sleep(plan.delay)
        self.close_connection = True


class _Plan:
    """What the server serves and how it misbehaves; it records every request."""

    def __init__(self, data: bytes, path: str = "/" + FILENAME) -> None:
        self.data, self.path = data, path
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # answered (one per request) before serving the file
        self.drop_after: list[int] = []  # bytes of body sent before closing, one per request
        self.ignore_range = False
        self.stall_first = 0.0  # seconds before the first answer (for time-outs)
        self.chunk, self.delay = 64 * 1024, 0.0
        self.max_requests, self.deadline = 30, time.monotonic() + 60

    @property
    def gets(self) -> int:
        return len(self.requests)


@pytest.fixture()
def serve():
    servers = []

    def start(data: bytes) -> tuple[_Plan, str]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.plan = _Plan(data)  # type: ignore[attr-defined]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        servers.append((server, thread))
        return server.plan, f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save({"model": {"weight": torch.randn(768, 1024)}}, buffer)  # ~3 MB
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NAPARI_SAM2_OFFLINE", raising=False)
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(transfer, "_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(registry, "_REGISTERED", {})


def _info(data: bytes, base: str, **changes) -> CheckpointInfo:
    info = CheckpointInfo(
        "sam2.1_hiera_tiny",
        FILENAME,
        f"{base}/{FILENAME}",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    return replace(info, **changes)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".part", ".lock"))


def test_download_is_verified_and_renamed_only_when_complete(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    final = tmp_path / FILENAME
    seen = []

    def progress(done, total):
        seen.append((done, final.exists(), (tmp_path / (FILENAME + ".part")).exists()))

    path = download_checkpoint(_info(checkpoint_bytes, base), tmp_path, progress=progress)
    assert path == final and path.read_bytes() == checkpoint_bytes
    assert all(not final_exists and part_exists for _, final_exists, part_exists in seen)
    assert seen[-1][0] == len(checkpoint_bytes)
    assert plan.gets == 1 and plan.requests[0]["range"] is None
    assert _leftovers(tmp_path) == []
    record = json.loads((tmp_path / (FILENAME + ".sha256")).read_text())
    assert record["sha256"] == hashlib.sha256(checkpoint_bytes).hexdigest()
    assert record["size"] == len(checkpoint_bytes)


def test_resumes_after_a_dropped_connection(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    plan.drop_after = [1_000_000]
    path = download_checkpoint(_info(checkpoint_bytes, base), tmp_path)
    assert path.read_bytes() == checkpoint_bytes
    assert [r["range"] for r in plan.requests] == [None, "bytes=1000000-"]


def test_server_that_ignores_range_is_restarted(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    plan.drop_after, plan.ignore_range = [1_000_000], True
    path = download_checkpoint(_info(checkpoint_bytes, base), tmp_path)
    assert path.read_bytes() == checkpoint_bytes
    assert plan.gets == 2 and plan.requests[1]["range"] == "bytes=1000000-"


def test_retries_after_a_timeout_and_a_server_error(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    plan.stall_first, plan.statuses = 1.0, [None, 503]
    path = download_checkpoint(_info(checkpoint_bytes, base), tmp_path, timeout=0.3)
    assert path.read_bytes() == checkpoint_bytes
    assert plan.gets == 3


def test_gives_up_after_retries_without_progress(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    plan.drop_after = [0] * 10
    with pytest.raises(DownloadError) as info:
        download_checkpoint(_info(checkpoint_bytes, base), tmp_path, retries=2)
    message = str(info.value)
    assert f"{base}/{FILENAME}" in message and "3 attempts in a row" in message
    assert plan.gets == 3
    assert not (tmp_path / FILENAME).exists()


def test_http_404_names_url_and_status(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    url = f"{base}/moved/{FILENAME}"
    with pytest.raises(DownloadError) as info:
        download_checkpoint(_info(checkpoint_bytes, base, url=url), tmp_path)
    assert url in str(info.value) and "HTTP 404" in str(info.value)
    assert plan.gets == 1, "a missing file is not retried"
    assert list(tmp_path.iterdir()) == []


def test_hash_mismatch_removes_the_download(tmp_path, serve, checkpoint_bytes):
    _, base = serve(checkpoint_bytes)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download_checkpoint(_info(checkpoint_bytes, base, sha256=wrong), tmp_path)
    message = str(info.value)
    assert wrong in message and hashlib.sha256(checkpoint_bytes).hexdigest() in message
    assert "run again" in message
    assert list(tmp_path.iterdir()) == [], "neither the final file nor the .part may remain"


def test_response_of_the_wrong_size_is_refused(tmp_path, serve, checkpoint_bytes):
    _, base = serve(b"<html>please log in</html>")
    with pytest.raises(DownloadError, match="sent 26 bytes of application/octet-stream"):
        download_checkpoint(_info(checkpoint_bytes, base), tmp_path)
    assert not (tmp_path / FILENAME).exists()


def test_slow_server_reports_progress_until_the_total(tmp_path, serve):
    data = random.Random(0).randbytes(40 * 16 * 1024)
    plan, base = serve(data)
    plan.chunk, plan.delay = 16 * 1024, 0.03
    seen: list[tuple[int, int]] = []
    download_checkpoint(_info(data, base), tmp_path, progress=lambda d, t: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert all(t == len(data) for _, t in seen)
    assert done == sorted(done) and len(set(done)) == len(done), "progress only goes forward"
    assert done[-1] == len(data)
    assert len([d for d in done if 0 < d < len(data)]) >= 2, "a slow download must report on time"


def test_cancel_keeps_the_part_and_a_later_call_resumes(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    info = _info(checkpoint_bytes, base)
    received = [0]

    def progress(done, total):
        received[0] = done

    with pytest.raises(Cancelled):
        download_checkpoint(
            info, tmp_path, progress=progress, should_stop=lambda: received[0] >= 1 << 20
        )
    part = tmp_path / (FILENAME + ".part")
    kept = part.stat().st_size
    assert 1 << 20 <= kept < len(checkpoint_bytes)
    assert not (tmp_path / FILENAME).exists() and not (tmp_path / (FILENAME + ".lock")).exists()

    path = download_checkpoint(info, tmp_path)
    assert path.read_bytes() == checkpoint_bytes
    assert plan.requests[-1]["range"] == f"bytes={kept}-"
    assert not part.exists()


def no_sockets_guard(monkeypatch) -> list:
    attempts: list = []

    def refuse(self, address):
        attempts.append(address)
        raise OSError("the network was touched in offline mode")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_mode_says_what_to_put_where(tmp_path, serve, checkpoint_bytes, monkeypatch, how):
    plan, base = serve(checkpoint_bytes)
    attempts = no_sockets_guard(monkeypatch)
    info = _info(checkpoint_bytes, base)
    if how == "env":
        monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")
    with pytest.raises(DownloadError) as error:
        download_checkpoint(info, tmp_path, offline=True if how == "argument" else None)
    message = str(error.value)
    assert str(tmp_path / FILENAME) in message and info.url in message
    assert f"{len(checkpoint_bytes):,} bytes" in message and info.sha256 in message
    assert plan.gets == 0 and attempts == []
    assert list(tmp_path.iterdir()) == []


def test_cached_file_is_hashed_once_then_trusted(tmp_path, serve, checkpoint_bytes, monkeypatch):
    plan, base = serve(checkpoint_bytes)
    served = _info(checkpoint_bytes, base)
    official = OFFICIAL_CHECKPOINTS["sam2.1_hiera_tiny"]
    monkeypatch.setitem(
        OFFICIAL_CHECKPOINTS,
        "sam2.1_hiera_tiny",
        replace(official, url=served.url, size=served.size, sha256=served.sha256),
    )
    hashes = []
    real = checksums.sha256_file
    monkeypatch.setattr(checksums, "sha256_file", lambda path: hashes.append(path) or real(path))

    path = ensure_checkpoint("sam2.1_hiera_tiny")
    assert path.parent == tmp_path / "cache" and path.read_bytes() == checkpoint_bytes
    assert len(hashes) == 1 and plan.gets == 1
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")  # a cached file needs no network
    for _ in range(3):
        assert ensure_checkpoint("sam2.1_hiera_tiny") == path
    assert len(hashes) == 1 and plan.gets == 1

    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched: verify again, once
    ensure_checkpoint("sam2.1_hiera_tiny")
    ensure_checkpoint("facebook/sam2.1-hiera-tiny")
    assert len(hashes) == 2


def test_file_put_in_place_by_hand_is_verified(tmp_path, checkpoint_bytes):
    info = _info(checkpoint_bytes, "http://127.0.0.1:9")
    (tmp_path / FILENAME).write_bytes(checkpoint_bytes)
    assert ensure_checkpoint(info, offline=True, folder=tmp_path) == tmp_path / FILENAME

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / FILENAME).write_bytes(bytes(len(checkpoint_bytes)))
    with pytest.raises(CheckpointError) as error:
        ensure_checkpoint(info, offline=True, folder=bad)
    assert info.sha256 in str(error.value) and hashlib.sha256(
        bytes(len(checkpoint_bytes))
    ).hexdigest() in str(error.value)
    assert (bad / FILENAME).exists(), "a file the user placed is never deleted"

    (bad / FILENAME).write_bytes(b"short")
    with pytest.raises(
        CheckpointError, match=f"5 bytes, but sam2.1_hiera_tiny has {len(checkpoint_bytes):,}"
    ):
        ensure_checkpoint(info, offline=True, folder=bad)
    assert ensure_checkpoint(info, offline=True, folder=bad, strict=False) == bad / FILENAME


def test_two_threads_download_one_file_once(tmp_path, serve, checkpoint_bytes):
    plan, base = serve(checkpoint_bytes)
    plan.delay = 0.005  # long enough for both threads to overlap
    info = _info(checkpoint_bytes, base)
    start = threading.Barrier(2)
    results: list[object] = []

    def work():
        start.wait(timeout=10)
        try:
            results.append(download_checkpoint(info, tmp_path))
        except (OSError, CheckpointError) as err:  # shown by the assertion below
            results.append(err)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == [tmp_path / FILENAME] * 2
    assert (tmp_path / FILENAME).read_bytes() == checkpoint_bytes
    assert plan.gets == 1, "the second thread must wait for the first, not download again"
    assert _leftovers(tmp_path) == []


def test_leftover_lock_file_of_a_dead_process_does_not_block(tmp_path, serve, checkpoint_bytes):
    _, base = serve(checkpoint_bytes)
    (tmp_path / (FILENAME + ".lock")).write_text("12345\n")
    path = download_checkpoint(_info(checkpoint_bytes, base), tmp_path)
    assert path.read_bytes() == checkpoint_bytes and _leftovers(tmp_path) == []


def test_load_model_downloads_a_registered_checkpoint(serve, capsys):
    from napari_sam2 import build_model, load_model

    torch.manual_seed(1)
    model = build_model("sam2.1_hiera_test", device="cpu")
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict()}, buffer)
    data = buffer.getvalue()
    plan, base = serve(data)
    register_checkpoint(
        CheckpointInfo(
            "sam2.1_hiera_test",
            "cells-test.pt",
            f"{base}/{FILENAME}",
            len(data),
            hashlib.sha256(data).hexdigest(),
            name="cells-test",
        )
    )
    loaded = load_model("cells-test", device="cpu")
    assert loaded.config.name == "sam2.1_hiera_test"
    assert torch.equal(loaded.no_obj_ptr, model.no_obj_ptr)
    err = capsys.readouterr().err
    assert "Downloading cells-test.pt" in err and "100%" in err
    load_model("cells-test", device="cpu")
    assert plan.gets == 1 and capsys.readouterr().err == "", (
        "the second load uses the cache quietly"
    )


def test_register_checkpoint_refuses_clashes(checkpoint_bytes):
    mine = _info(checkpoint_bytes, "http://127.0.0.1:9", name="mine", filename="mine.pt")
    register_checkpoint(mine)
    register_checkpoint(mine)  # the same again is fine
    with pytest.raises(ValueError, match="already registered"):
        register_checkpoint(replace(mine, sha256="1" * 64))
    with pytest.raises(ValueError, match="official weights"):
        register_checkpoint(replace(mine, name="sam2.1_hiera_tiny"))
    with pytest.raises(ValueError, match="share one cache file"):
        register_checkpoint(replace(mine, name="other", filename=FILENAME))
    register_checkpoint(replace(mine, sha256="1" * 64), replace_existing=True)
    assert registry.checkpoint_info("mine").sha256 == "1" * 64


def test_hugging_face_id_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(CheckpointError) as error:
        resolve_hf_id("facebook/sam2.1-hiera-tiny")
    assert "pip install huggingface_hub" in str(error.value)
    assert "'sam2.1_hiera_tiny'" in str(error.value), "the preset name is offered instead"


def test_hugging_face_id_with_the_package(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("huggingface_hub")

    def hf_hub_download(repo_id, filename, local_files_only=False):
        calls.append((repo_id, filename, local_files_only))
        if repo_id == "someone/broken":
            raise OSError("Repository Not Found")
        target = tmp_path / filename
        target.write_bytes(b"weights")
        return str(target)

    fake.hf_hub_download = hf_hub_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    assert resolve_hf_id("facebook/sam2.1-hiera-tiny") == tmp_path / "sam2.1_hiera_tiny.pt"
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")
    assert resolve_hf_id("lab/cells-sam2", filename="cells.pt") == tmp_path / "cells.pt"
    assert calls == [
        ("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", False),
        ("lab/cells-sam2", "cells.pt", True),
    ]
    with pytest.raises(ValueError, match="pass filename="):
        resolve_hf_id("lab/cells-sam2")  # offline: the repository cannot be listed
    with pytest.raises(DownloadError, match="cells.pt of someone/broken: Repository Not Found"):
        resolve_hf_id("someone/broken", filename="cells.pt")


def _fake_hub(monkeypatch, files: dict[str, Path], listing: list[str] | None = None) -> list:
    """A stand-in huggingface_hub whose downloads are files of this machine; returns its calls."""
    calls = []
    fake = types.ModuleType("huggingface_hub")

    def hf_hub_download(repo_id, filename, local_files_only=False):
        calls.append((repo_id, filename, local_files_only))
        if filename not in files:
            raise OSError(f"{filename} not found in {repo_id}")
        return str(files[filename])

    fake.hf_hub_download = hf_hub_download
    if listing is not None:
        fake.list_repo_files = lambda repo_id: calls.append(("list", repo_id)) or listing
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    return calls


def test_load_model_takes_a_hugging_face_id_from_the_hub(tmp_path, monkeypatch, checkpoint):
    from napari_sam2 import load_model

    data = checkpoint.read_bytes()
    register_checkpoint(
        CheckpointInfo(
            "sam2.1_hiera_test",
            "cells-test.pt",
            "http://127.0.0.1:9/cells-test.pt",  # never asked: the Hub provides the file
            len(data),
            hashlib.sha256(data).hexdigest(),
            name="cells-test",
            hf_repo="lab/cells-test",
        )
    )
    calls = _fake_hub(monkeypatch, {"cells-test.pt": checkpoint})
    model = load_model("lab/cells-test", device="cpu")
    assert model.config.name == "sam2.1_hiera_test"
    assert calls == [("lab/cells-test", "cells-test.pt", False)]

    cached = tmp_path / "cache" / "cells-test.pt"  # once in napari-sam2's cache, the Hub is not asked
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data)
    load_model("lab/cells-test", device="cpu")
    assert len(calls) == 1

    calls = _fake_hub(monkeypatch, {"cells.pt": checkpoint}, listing=["README.md", "cells.pt"])
    model = load_model("someone/sam2-cells", device="cpu")  # unknown: its only .pt file
    assert model.config.name == "sam2.1_hiera_test"
    assert calls == [("list", "someone/sam2-cells"), ("someone/sam2-cells", "cells.pt", False)]
    _fake_hub(monkeypatch, {}, listing=["a.pt", "b.pt"])
    with pytest.raises(ValueError, match="a.pt, b.pt: pass filename="):
        load_model("someone/two-models", device="cpu")


def test_load_model_hugging_face_id_without_the_package(monkeypatch):
    from napari_sam2 import load_model

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match="pip install huggingface_hub"):
        load_model("someone/sam2-cells")
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")  # an official id still works from the cache
    with pytest.raises(DownloadError, match=r"Offline mode.*sam2\.1_hiera_tiny\.pt"):
        load_model("facebook/sam2.1-hiera-tiny")


def test_text_progress_draws_one_bar_and_stays_quiet_when_done_at_once():
    stream = io.StringIO()
    bar = TextProgress("Downloading x.pt", stream)
    for done in range(0, 1_000_001, 50_000):
        bar(done, 1_000_000)
    text = stream.getvalue()
    assert "Downloading x.pt" in text and "1.00M/1.00M" in text and "100%" in text
    counted = io.StringIO()
    steps = TextProgress("train", counted, unit="step")
    steps.postfix = "loss 0.5"
    for done in (1, 2, 3):
        steps(done, 3)
    assert "3/3" in counted.getvalue() and "loss 0.5" in counted.getvalue()
    quiet = io.StringIO()
    TextProgress("x", quiet)(1_000_000, 1_000_000)
    assert quiet.getvalue() == ""
