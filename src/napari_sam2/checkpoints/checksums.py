"""sha256 of cached checkpoints: computed once, then remembered beside the file.

The record (`<file>.sha256`) holds the hash with the file's size and modification time, so a
file that changed since is hashed again and 900 MB are not read on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    """Where the hash of `path` is remembered."""
    return path.with_name(path.name + ".sha256")


def record_sha256(path: Path, digest: str) -> None:
    """Remember `path`'s hash with its size and mtime, which tell whether it changed since."""
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    temporary = path.with_name(f"{path.name}.sha256.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(json.dumps(record) + "\n")
        os.replace(temporary, sidecar(path))
    except OSError:  # a read-only cache: hash again next time
        temporary.unlink(missing_ok=True)


def recorded_or_computed_sha256(path: Path) -> str:
    """The remembered hash of an unchanged file, else a freshly computed (and recorded) one."""
    try:
        record = json.loads(sidecar(path).read_text())
        stat = path.stat()
        if record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(path)
    record_sha256(path, digest)
    return digest
