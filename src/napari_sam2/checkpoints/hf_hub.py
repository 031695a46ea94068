"""Checkpoints named by a Hugging Face id ('facebook/sam2.1-hiera-tiny', 'my-lab/sam2-cells').

Ids the registry knows (the official repositories, and registered checkpoints with `hf_repo`)
come from napari-sam2's own cache when the file is there; otherwise the optional
`huggingface_hub` package fetches them into Hugging Face's cache. Without that package, known
ids fall back to the registry's download address and other ids are an error that says what to
install.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from .cache import cache_dir
from .files import CheckpointError
from .registry import CheckpointInfo, all_checkpoints
from .transfer import DownloadError, is_offline

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SUFFIXES = (".pt", ".pth")


def is_hf_id(text: str) -> bool:
    """True for 'owner/repository' that is not a checkpoint file name nor a path on this machine."""
    return (
        bool(_HF_ID.match(text))
        and not text.endswith(_SUFFIXES)
        and not Path(text).expanduser().exists()
    )


def known_repo(model_id: str) -> CheckpointInfo | None:
    """The registry's checkpoint stored in Hugging Face repository `model_id`, if any."""
    return next((i for i in all_checkpoints().values() if i.hf_repo == model_id), None)


def hub_checkpoint(
    model_id: str, offline: bool | None = None
) -> tuple[str | Path, Path | None] | None:
    """What `load_model` loads for a Hugging Face id, as (name or file, checkpoint file):

    (registry name, None): a known id whose file is in our cache, or one to download from the
        registry's address because huggingface_hub is not installed;
    (preset, file): a known id fetched from the Hub (the file is checked against the preset);
    (file, None): any other repository, fetched from the Hub (its variant is recognised);
    None: `model_id` is not a Hugging Face id.
    """
    if not is_hf_id(model_id):
        return None
    info = known_repo(model_id)
    if info is None:
        return resolve_hf_id(model_id, offline=offline), None
    if (cache_dir() / info.filename).is_file() or _hub() is None:
        return info.name, None
    try:
        return info.preset, resolve_hf_id(model_id, info.filename, offline)
    except DownloadError:
        if is_offline(offline):
            return info.name, None  # the cache's offline error says which file to put where
        raise


def resolve_hf_id(model_id: str, filename: str | None = None, offline: bool | None = None) -> Path:
    """The local path of a checkpoint on the Hugging Face Hub, fetched into Hugging Face's own
    cache by the optional `huggingface_hub` package. `filename` defaults to the registry's file
    for known repositories, else to the repository's only .pt/.pth file."""
    info = known_repo(model_id)
    hub = _hub()
    if hub is None and info is None and is_offline(offline):
        raise CheckpointError(
            f"{model_id!r} is not a preset, a known SAM 2 repository or an existing file, and "
            "napari-sam2 is offline: check the name, pass a checkpoint file, or go online with "
            "huggingface_hub installed to fetch other repositories."
        )
    if hub is None:
        instead = (
            f", or use the preset name {info.name!r}, which downloads the same weights"
            if info
            else ""
        )
        raise CheckpointError(
            f"Hugging Face ids such as {model_id!r} need the huggingface_hub package: "
            f"`pip install huggingface_hub`{instead}."
        )
    if filename is None:
        filename = info.filename if info is not None else _only_checkpoint(hub, model_id, offline)
    try:
        local = hub.hf_hub_download(
            repo_id=model_id, filename=filename, local_files_only=is_offline(offline)
        )
    except Exception as err:  # the hub's own errors differ between versions; keep their message
        raise DownloadError(
            f"Hugging Face could not provide {filename} of {model_id}: {err}"
        ) from err
    return Path(local)


def _hub() -> ModuleType | None:
    try:
        import huggingface_hub
    except ImportError:
        return None
    return huggingface_hub


def _only_checkpoint(hub: ModuleType, model_id: str, offline: bool | None) -> str:
    """The one .pt/.pth file of a repository; anything else asks for `filename=`."""
    ask = f"pass filename= (the .pt file in {model_id}) as well"
    lister = getattr(hub, "list_repo_files", None)
    if lister is None or is_offline(offline):
        raise ValueError(f"{model_id!r} is not one of the official SAM 2 repositories: {ask}.")
    try:
        files = [f for f in lister(model_id) if f.endswith(_SUFFIXES)]
    except Exception as err:  # network or repository errors, worded by the hub
        raise DownloadError(f"Hugging Face could not list the files of {model_id}: {err}") from err
    if len(files) != 1:
        found = ", ".join(files) if files else "no checkpoint file"
        raise ValueError(f"{model_id} holds {found}: {ask}.")
    return files[0]
