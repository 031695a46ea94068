"""Getting checkpoints into the cache: the cached file when it is there and intact, else a
resumable, verified, locked download; an offline mode that never touches the network.

The pieces: `transfer` moves the bytes, `checksums` remembers hashes, `file_lock` keeps two
downloaders apart, `hf_hub` reaches the Hugging Face Hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..progress import ProgressCallback, StopCheck
from . import checksums
from .cache import CACHE_ENV, cache_dir
from .file_lock import exclusive
from .files import CheckpointError
from .registry import CheckpointInfo, checkpoint_info
from .transfer import (
    OFFLINE_ENV,
    DownloadError,
    check_stop,
    fetch_with_retries,
    final_path,
    is_offline,
    partial_path,
    size_of,
)


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
    digest = checksums.recorded_or_computed_sha256(path)
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
    part = partial_path(final)

    def waiting() -> None:  # another process or thread holds the lock: show its progress
        check_stop(should_stop, info, part)
        if progress is not None:
            progress(size_of(part), info.size)

    with exclusive(final.with_name(final.name + ".lock"), waiting):
        if _is_complete(final, info):
            return final  # another process (or thread) has just downloaded it
        fetch_with_retries(info, part, progress, should_stop, timeout, retries)
        digest = _verify(info, part)
        os.replace(part, final)
        checksums.record_sha256(final, digest)
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


def _folder(folder: str | Path | None) -> Path:
    return Path(folder).expanduser() if folder is not None else cache_dir()


def _verify(info: CheckpointInfo, part: Path) -> str:
    """The sha256 of a finished download; a file of the wrong size or hash is removed."""
    size = part.stat().st_size
    if size != info.size:
        part.unlink()
        raise DownloadError(
            f"The download of {info.url} has {size:,} bytes, expected {info.size:,}. It was "
            "removed: run again to download it afresh."
        )
    digest = checksums.sha256_file(part)
    if digest != info.sha256:
        part.unlink()
        raise DownloadError(
            f"The download of {info.url} is corrupt: its sha256 is {digest}, expected "
            f"{info.sha256}. It was removed: run again to download it afresh. If this repeats, "
            f"something on the way alters the file: download it by hand, check it with "
            f"`sha256sum`, and put it at {final_path(part)}."
        )
    return digest


def _is_complete(path: Path, info: CheckpointInfo) -> bool:
    if not path.is_file() or path.stat().st_size != info.size:
        return False
    return checksums.recorded_or_computed_sha256(path) == info.sha256
