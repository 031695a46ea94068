"""HTTP transfer of one checkpoint into its `.part` file: resumed with Range requests, retried
with a growing pause after dropped connections and overloaded servers, stoppable at any chunk.

The offline switch (NAPARI_SAM2_OFFLINE) that forbids all of this lives here too.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..progress import Cancelled, ProgressCallback, StopCheck
from .files import CheckpointError
from .registry import CheckpointInfo

OFFLINE_ENV = "NAPARI_SAM2_OFFLINE"

_CHUNK = 64 * 1024  # bytes asked of the socket at a time
_REPORT_BYTES = 1 << 20  # progress is reported at least every MiB ...
_REPORT_SECONDS = 0.25  # ... and every quarter second on a slow connection
_BACKOFF_SECONDS = 1.0  # pause before a retry; doubles after each failure in a row
_BACKOFF_MAX = 16.0
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


def partial_path(final: Path) -> Path:
    """Where the bytes of `final` collect until it is complete and verified."""
    return final.with_name(final.name + ".part")


def final_path(part: Path) -> Path:
    """The file a `.part` file becomes."""
    return part.with_name(part.name.removesuffix(".part"))


def size_of(path: Path) -> int:
    """The size of a file, 0 when it does not exist (yet)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def check_stop(should_stop: StopCheck | None, info: CheckpointInfo, part: Path) -> None:
    """Raise Cancelled (keeping the .part for next time) when the caller asks to stop."""
    if should_stop is not None and should_stop():
        raise Cancelled(
            f"Download of {info.filename} stopped with {size_of(part):,} of {info.size:,} bytes "
            f"kept in {part}; the next attempt resumes from there."
        )


def fetch_with_retries(
    info: CheckpointInfo,
    part: Path,
    progress: ProgressCallback | None,
    should_stop: StopCheck | None,
    timeout: float,
    retries: int,
) -> None:
    """Bring `part` to the full size of `info`; `retries` bounds the failures in a row that
    bring no new bytes."""
    failures = 0
    while True:
        before = size_of(part)
        try:
            _fetch(info, part, progress, should_stop, timeout)
            return
        except _Transient as err:
            failures = 0 if size_of(part) > before else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"Could not download {info.url}: {err} ({failures} attempts in a row brought "
                    f"no data). Check the network connection (a proxy is taken from HTTPS_PROXY) "
                    f"and run again: the download resumes from {part}. Without internet, "
                    f"download the file elsewhere and put it at {final_path(part)}"
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
        check_stop(should_stop, info, part)
        time.sleep(min(left, 0.1))


def _fetch(info: CheckpointInfo, part: Path, progress, should_stop, timeout: float) -> None:
    """One request: append the rest of the file to `part` (or start over if the server will not
    resume). Raises _Transient for failures worth retrying."""
    have = size_of(part)
    if have > info.size:
        part.unlink()
        have = 0
    if have == info.size:
        return
    check_stop(should_stop, info, part)
    headers = {"User-Agent": f"napari-sam2/{_package_version()}", "Accept-Encoding": "identity"}
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
            f"{final_path(part)}."
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
            f"Download it by hand and put it at {final_path(part)}."
        )
    return 0


def _stream(
    response, out, done: int, info: CheckpointInfo, part: Path, progress, should_stop
) -> None:
    reported, reported_at = done, time.monotonic()
    if progress is not None:
        progress(done, info.size)
    while done < info.size:
        check_stop(should_stop, info, part)
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


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-sam2")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"
