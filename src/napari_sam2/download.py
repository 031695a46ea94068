"""Getting checkpoints onto the machine: resumable, verified, locked downloads into the cache,
an offline mode that never touches the network, and optional Hugging Face ids."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from . import __version__
from .cache import CACHE_ENV, cache_dir
from .checkpoint import CheckpointError
from .progress import Cancelled, ProgressCallback, StopCheck
from .registry import CheckpointInfo, all_checkpoints, checkpoint_info

OFFLINE_ENV = "NAPARI_SAM2_OFFLINE"

_CHUNK = 64 * 1024  # bytes asked of the socket at a time
_REPORT_BYTES = 1 << 20  # progress is reported at least every MiB ...
_REPORT_SECONDS = 0.25  # ... and every quarter second on a slow connection
_BACKOFF_SECONDS = 1.0  # pause before a retry; doubles after each failure in a row
_BACKOFF_MAX = 16.0
_LOCK_POLL_SECONDS = 0.1
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(CheckpointError):
    """A checkpoint that could not be downloaded, or whose download failed verification."""


class _Transient(Exception):
    """A failure worth retrying: dropped connection, time-out, overloaded server."""


def is_offline(offline: bool | None = None) -> bool:
    """`offline` if given, else whether $NAPARI_SAM2_OFFLINE is set to 1/true/yes/on."""
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# ----------------------------------------------------------------------------- public API


def ensure_checkpoint(
    preset_or_info: str | CheckpointInfo,
    offline: bool | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    *,
    folder: str | Path | None = None,
    timeout: float = 30,
    retries: int = 3,
    strict: bool = True,
) -> Path:
    """The local file of a known checkpoint: the cached one (hashed once, then recorded in a
    `<file>.sha256` sidecar so later calls are instant), else downloaded.

    strict=False returns a cached file of another size than the registry's unchecked, for
    callers that check its contents themselves (load_model does, for files placed by hand).
    """
    info = checkpoint_info(preset_or_info) if isinstance(preset_or_info, str) else preset_or_info
    path = _folder(folder) / info.filename
    if not path.is_file():
        return download_checkpoint(
            info,
            path.parent,
            progress,
            should_stop,
            timeout=timeout,
            retries=retries,
            offline=offline,
        )
    size = path.stat().st_size
    if size != info.size:
        if not strict:
            return path
        raise CheckpointError(
            f"{path} has {size:,} bytes, but {info.name} has {info.size:,}: it is a truncated "
            "download or another file. Delete it to download it again, or move it elsewhere and "
            "load it by its path."
        )
    digest = _recorded_or_computed_sha256(path)
    if digest != info.sha256:
        raise CheckpointError(
            f"{path} is not the {info.name} checkpoint: its sha256 is {digest}, expected "
            f"{info.sha256}. It is corrupt or another file: delete it and it is downloaded again."
        )
    return path


def download_checkpoint(
    info: CheckpointInfo,
    folder: str | Path | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    timeout: float = 30,
    retries: int = 3,
    offline: bool | None = None,
) -> Path:
    """Download `info` into `folder` (default: the cache) and return the file's path.

    Bytes go to `<file>.part`, which an interrupted download resumes (HTTP Range); it is
    renamed to `<file>` only once its sha256 matches. `retries` bounds the failures in a row
    that bring no new bytes. `should_stop()` cancels (raises Cancelled) and keeps the .part.
    """
    final = _folder(folder) / info.filename
    if is_offline(offline):
        raise offline_error(info, final, offline)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(final, info, progress, should_stop):
        if _is_complete(final, info):
            return final  # another process (or thread) has just downloaded it
        part = partial_path(final)
        _fetch_with_retries(info, part, progress, should_stop, timeout, retries)
        digest = _verify(info, part)
        os.replace(part, final)
        _record_sha256(final, digest)
    return final


def offline_error(
    info: CheckpointInfo, destination: Path, offline: bool | None = None
) -> DownloadError:
    """The error of offline mode: which file to fetch elsewhere and where to put it."""
    why = "offline=True" if offline else f"{OFFLINE_ENV}=1"
    return DownloadError(
        f"Offline mode ({why}): not downloading {info.name}. On a machine with internet, "
        f"download {info.url} ({info.size:,} bytes, sha256 {info.sha256}) and put it at "
        f"{destination} on this one (or set {CACHE_ENV} to the folder that holds it)."
    )


def partial_path(final: Path) -> Path:
    """Where the bytes of `final` collect until it is complete and verified."""
    return final.with_name(final.name + ".part")


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_hf_id(model_id: str, filename: str | None = None, offline: bool | None = None) -> Path:
    """The local path of a checkpoint on the Hugging Face Hub (e.g. 'facebook/sam2.1-hiera-tiny'),
    fetched into Hugging Face's own cache by the optional `huggingface_hub` package."""
    info = next((i for i in all_checkpoints().values() if i.hf_repo == model_id), None)
    if filename is None:
        if info is None:
            raise ValueError(
                f"{model_id!r} is not one of the official SAM 2 repositories: pass filename= "
                "(the .pt file in it) as well."
            )
        filename = info.filename
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        instead = (
            f", or use the preset name {info.name!r}, which downloads the same weights"
            if info
            else ""
        )
        raise CheckpointError(
            f"Hugging Face ids such as {model_id!r} need the huggingface_hub package: "
            f"`pip install huggingface_hub`{instead}."
        ) from None
    try:
        local = hf_hub_download(
            repo_id=model_id, filename=filename, local_files_only=is_offline(offline)
        )
    except Exception as err:  # the hub's own errors differ between versions; keep their message
        raise DownloadError(
            f"Hugging Face could not provide {filename} of {model_id}: {err}"
        ) from err
    return Path(local)


# ----------------------------------------------------------------------------- text progress


class TextProgress:
    """A progress callback that draws `label  12.3/156.0 MB  8%  4.1 MB/s` on a stream: one line
    redrawn in a terminal, otherwise a line every 10%."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start: tuple[float, int] | None = None
        self._last_draw = 0.0
        self._width = 0
        self._last_tenth = -1
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = (now, done)
        finished = total > 0 and done >= total
        if self._finished or (finished and self._last_tenth < 0 and done == self._start[1]):
            return  # nothing was downloaded while we watched: stay quiet
        tenth = 10 * done // total if total else 0
        if self.interactive:
            if not finished and now - self._last_draw < 0.2:
                return
            line = self._line(done, total, now)
            self.stream.write("\r" + line.ljust(self._width) + ("\n" if finished else ""))
            self._width = len(line)  # a shorter next line blanks what this one leaves
        else:
            if tenth == self._last_tenth and not finished:
                return
            self.stream.write(self._line(done, total, now) + "\n")
        self.stream.flush()
        self._last_draw, self._last_tenth, self._finished = now, tenth, finished

    def _line(self, done: int, total: int, now: float) -> str:
        started, first = self._start or (now, done)
        speed = (done - first) / max(now - started, 1e-6) / 1e6
        percent = f"{100 * done / total:3.0f}%" if total else ""
        return f"{self.label}  {done / 1e6:.1f}/{total / 1e6:.1f} MB  {percent}  {speed:.1f} MB/s"


# ----------------------------------------------------------------------------- HTTP


def _folder(folder: str | Path | None) -> Path:
    return Path(folder).expanduser() if folder is not None else cache_dir()


def _final(part: Path) -> Path:
    return part.with_name(part.name.removesuffix(".part"))


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fetch_with_retries(
    info: CheckpointInfo, part: Path, progress, should_stop, timeout: float, retries: int
) -> None:
    failures = 0
    while True:
        before = _size_of(part)
        try:
            _fetch(info, part, progress, should_stop, timeout)
            return
        except _Transient as err:
            failures = 0 if _size_of(part) > before else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"Could not download {info.url}: {err} ({failures} attempts in a row brought "
                    f"no data). Check the network connection (a proxy is taken from HTTPS_PROXY) "
                    f"and run again: the download resumes from {part}. Without internet, "
                    f"download the file elsewhere and put it at {_final(part)}"
                    f"; {OFFLINE_ENV}=1 stops all download attempts."
                ) from None
            _pause(
                min(_BACKOFF_SECONDS * 2 ** max(failures - 1, 0), _BACKOFF_MAX),
                should_stop,
                info,
                part,
            )


def _pause(seconds: float, should_stop, info: CheckpointInfo, part: Path) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        _check_stop(should_stop, info, part)
        time.sleep(min(left, 0.1))


def _check_stop(should_stop, info: CheckpointInfo, part: Path) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled(
            f"Download of {info.filename} stopped with {_size_of(part):,} of {info.size:,} bytes "
            f"kept in {part}; the next attempt resumes from there."
        )


def _fetch(info: CheckpointInfo, part: Path, progress, should_stop, timeout: float) -> None:
    """One request: append the rest of the file to `part` (or start over if the server will not
    resume). Raises _Transient for failures worth retrying."""
    have = _size_of(part)
    if have > info.size:
        part.unlink()
        have = 0
    if have == info.size:
        return
    _check_stop(should_stop, info, part)
    headers = {"User-Agent": f"napari-sam2/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(info.url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and have:
            part.unlink()
            raise _Transient(
                "the server would not resume the partial download (HTTP 416)"
            ) from None
        if err.code in _RETRY_STATUS:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(
            f"Downloading {info.url} failed: HTTP {err.code} {err.reason}. The address may have "
            f"moved: update napari-sam2, or download the file by hand and put it at "
            f"{_final(part)}."
        ) from None
    except (OSError, http.client.HTTPException) as err:  # URLError, refused, reset, time-out
        raise _Transient(_reason(err)) from None
    with response:
        start = _start_offset(response, have, info, part)
        with open(part, "ab" if start else "wb") as out:
            _stream(response, out, start, info, part, progress, should_stop)
            out.flush()
            os.fsync(out.fileno())


def _start_offset(response, have: int, info: CheckpointInfo, part: Path) -> int:
    """Where the response's body starts in the file: `have` for a resumed request, 0 when the
    server sent the whole file (it ignored Range). Refuses a body that is not the checkpoint."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        start, _, total = content_range.removeprefix("bytes ").partition("/")
        if start.split("-")[0] != str(have) or total not in (str(info.size), "*"):
            part.unlink()
            raise _Transient(f"the server resumed at an unexpected place ({content_range!r})")
        return have
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) != info.size:
        kind = response.headers.get("Content-Type", "unknown type")
        raise DownloadError(
            f"{info.url} sent {int(length):,} bytes of {kind} instead of the {info.size:,}-byte "
            "checkpoint: a proxy or login page may be in the way, or the file has changed. "
            f"Download it by hand and put it at {_final(part)}."
        )
    return 0


def _stream(
    response, out, done: int, info: CheckpointInfo, part: Path, progress, should_stop
) -> None:
    reported, reported_at = done, time.monotonic()
    if progress is not None:
        progress(done, info.size)
    while done < info.size:
        _check_stop(should_stop, info, part)
        try:
            chunk = response.read1(min(_CHUNK, info.size - done))
        except (OSError, http.client.HTTPException) as err:
            raise _Transient(_reason(err)) from None
        if not chunk:
            raise _Transient(f"the connection closed after {done:,} of {info.size:,} bytes")
        out.write(chunk)
        done += len(chunk)
        now = time.monotonic()
        if progress is not None and (
            done - reported >= _REPORT_BYTES
            or now - reported_at >= _REPORT_SECONDS
            or done == info.size
        ):
            out.flush()  # so that a process waiting on the lock sees the same number
            progress(done, info.size)
            reported, reported_at = done, now


def _reason(err: BaseException) -> str:
    inner = getattr(err, "reason", None)
    return f"{type(err).__name__}: {inner or err}"


# ----------------------------------------------------------------------------- verification


def _verify(info: CheckpointInfo, part: Path) -> str:
    """The sha256 of a finished download; a file of the wrong size or hash is removed."""
    size = part.stat().st_size
    if size != info.size:
        part.unlink()
        raise DownloadError(
            f"The download of {info.url} has {size:,} bytes, expected {info.size:,}. It was "
            "removed: run again to download it afresh."
        )
    digest = sha256_file(part)
    if digest != info.sha256:
        part.unlink()
        raise DownloadError(
            f"The download of {info.url} is corrupt: its sha256 is {digest}, expected "
            f"{info.sha256}. It was removed: run again to download it afresh. If this repeats, "
            f"something on the way alters the file: download it by hand, check it with "
            f"`sha256sum`, and put it at {_final(part)}."
        )
    return digest


def _is_complete(path: Path, info: CheckpointInfo) -> bool:
    if not path.is_file() or path.stat().st_size != info.size:
        return False
    return _recorded_or_computed_sha256(path) == info.sha256


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _record_sha256(path: Path, digest: str) -> None:
    """Remember `path`'s hash with its size and mtime, which tell whether it changed since."""
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    temporary = path.with_name(f"{path.name}.sha256.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(json.dumps(record) + "\n")
        os.replace(temporary, _sidecar(path))
    except OSError:  # a read-only cache: hash again next time
        temporary.unlink(missing_ok=True)


def _recorded_or_computed_sha256(path: Path) -> str:
    try:
        record = json.loads(_sidecar(path).read_text())
        stat = path.stat()
        if record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(path)
    _record_sha256(path, digest)
    return digest


# ----------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _exclusive(final: Path, info: CheckpointInfo, progress, should_stop) -> Iterator[None]:
    """Hold `<file>.lock` so that one process or thread at a time downloads `final`. The operating
    system drops the lock when its holder dies, so a crash leaves no stale lock."""
    lock_path = final.with_name(final.name + ".lock")
    part = partial_path(final)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while not _try_lock(fd):
                _check_stop(should_stop, info, part)
                if progress is not None:
                    progress(_size_of(part), info.size)  # the other downloader's progress
                time.sleep(_LOCK_POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        if _is_current(fd, lock_path):
            break
        os.close(fd)  # its holder removed that lock file while we waited: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still holding it, so nobody locks a removed file
        _unlock(fd)
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        # Any other error: a file system without locks; go on, the hash check guards the file.
        return err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK)
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


def _is_current(fd: int, lock_path: Path) -> bool:
    try:
        return os.stat(lock_path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
