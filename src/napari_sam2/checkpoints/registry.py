"""Known checkpoints: where the official weights live, their sizes and hashes."""

from __future__ import annotations

from dataclasses import dataclass, replace

_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2"


@dataclass(frozen=True)
class CheckpointInfo:
    preset: str  # the architecture preset the weights belong to
    filename: str  # the name of the file in the cache folder
    url: str
    size: int  # bytes
    sha256: str
    license: str = "Apache-2.0"
    name: str = ""  # what users call it; defaults to the preset (official weights)
    hf_repo: str = ""  # Hugging Face repository that also holds `filename`, if any

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.preset)


def _hf_repo(preset: str) -> str:
    return "facebook/" + preset.replace("_hiera_", "-hiera-").replace("_", "-")


OFFICIAL_CHECKPOINTS: dict[str, CheckpointInfo] = {
    info.preset: replace(info, hf_repo=_hf_repo(info.preset))
    for info in [
        CheckpointInfo("sam2_hiera_tiny", "sam2_hiera_tiny.pt", f"{_BASE_URL}/072824/sam2_hiera_tiny.pt", 155_906_050, "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125"),
        CheckpointInfo("sam2_hiera_small", "sam2_hiera_small.pt", f"{_BASE_URL}/072824/sam2_hiera_small.pt", 184_309_650, "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3"),
        CheckpointInfo("sam2_hiera_base_plus", "sam2_hiera_base_plus.pt", f"{_BASE_URL}/072824/sam2_hiera_base_plus.pt", 323_493_298, "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071"),
        CheckpointInfo("sam2_hiera_large", "sam2_hiera_large.pt", f"{_BASE_URL}/072824/sam2_hiera_large.pt", 897_952_466, "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b"),
        CheckpointInfo("sam2.1_hiera_tiny", "sam2.1_hiera_tiny.pt", f"{_BASE_URL}/092824/sam2.1_hiera_tiny.pt", 156_008_466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
        CheckpointInfo("sam2.1_hiera_small", "sam2.1_hiera_small.pt", f"{_BASE_URL}/092824/sam2.1_hiera_small.pt", 184_416_285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
        CheckpointInfo("sam2.1_hiera_base_plus", "sam2.1_hiera_base_plus.pt", f"{_BASE_URL}/092824/sam2.1_hiera_base_plus.pt", 323_606_802, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
        CheckpointInfo("sam2.1_hiera_large", "sam2.1_hiera_large.pt", f"{_BASE_URL}/092824/sam2.1_hiera_large.pt", 898_083_611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
    ]
}
_REGISTERED: dict[str, CheckpointInfo] = {}


def register_checkpoint(info: CheckpointInfo, *, replace_existing: bool = False) -> None:
    """Make more weights (fine-tuned, shipped with a plugin) known by `info.name`, so that
    `load_model(info.name)` and `ensure_checkpoint(info.name)` fetch and verify them."""
    if info.name in OFFICIAL_CHECKPOINTS:
        raise ValueError(f"{info.name!r} names official weights; register yours under another name.")
    known = _REGISTERED.get(info.name)
    if known is not None and known != info and not replace_existing:
        raise ValueError(
            f"A checkpoint called {info.name!r} is already registered ({known.url}); "
            "choose another name, or pass replace_existing=True."
        )
    for other in all_checkpoints().values():
        if other.filename == info.filename and other.name != info.name:
            raise ValueError(
                f"{info.filename!r} is already the file of {other.name!r}: two checkpoints would "
                "share one cache file; give the new one another filename."
            )
    _REGISTERED[info.name] = info


def all_checkpoints() -> dict[str, CheckpointInfo]:
    """Every known checkpoint by name: the official ones, then the registered ones."""
    return {**OFFICIAL_CHECKPOINTS, **_REGISTERED}


def checkpoint_info(name: str) -> CheckpointInfo:
    """The checkpoint called `name`, or the official weights of a preset alias (HF id)."""
    known = all_checkpoints()
    if name in known:
        return known[name]
    for info in known.values():
        if info.hf_repo and info.hf_repo == name:
            return info
    raise KeyError(f"No checkpoint is known as {name!r}. Known: {', '.join(known)}.")


def info_for_filename(filename: str) -> CheckpointInfo | None:
    """The known checkpoint a file name refers to, if any."""
    for info in all_checkpoints().values():
        if info.filename == filename:
            return info
    return None
