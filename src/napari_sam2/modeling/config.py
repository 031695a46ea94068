"""Architecture configs: one frozen dataclass per part, one preset per official variant."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk: the only part that differs between model sizes."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of each stage, from stride 4 to stride 32."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))


@dataclass(frozen=True)
class SAM2Config:
    """Everything needed to build a SAM 2 model; defaults are the values shared by all presets."""

    name: str
    trunk: HieraConfig
    version: str = "2.1"  # "2" or "2.1": 2.1 adds no_obj_embed_spatial and pointer temporal encodings
    image_size: int = 1024
    d_model: int = 256  # width of the neck, prompt encoder, decoder and memory attention
    mem_dim: int = 64  # width of the memory encoder output
    num_maskmem: int = 7
    memory_attention_layers: int = 4
    max_obj_ptrs_in_encoder: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # Where the official weights of this preset come from (empty for presets without official weights).
    checkpoint_file: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_v21(self) -> bool:
        return self.version == "2.1"

    @property
    def backbone_stride(self) -> int:
        return 16

    @property
    def feat_size(self) -> int:
        """Side of the stride-16 image embedding (64 at 1024 px)."""
        return self.image_size // self.backbone_stride

    def with_image_size(self, image_size: int) -> SAM2Config:
        """The same architecture run at another input resolution (a multiple of 32)."""
        if image_size % 32 or image_size < 64:
            raise ValueError(f"image_size must be a multiple of 32 and >= 64, got {image_size}")
        return replace(self, image_size=image_size)


_TINY = HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9))
_SMALL = HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13))
_BASE_PLUS = HieraConfig(
    embed_dim=112,
    num_heads=2,
    stages=(2, 3, 16, 3),
    global_att_blocks=(12, 16, 20),
    window_pos_embed_bkg_spatial_size=(14, 14),
)
_LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_spec=(8, 4, 16, 8),
)
# A few-block trunk for fast tests; everything after the trunk is full size.
_TEST = HieraConfig(embed_dim=32, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,))

# The model the package ships: a small trunk and a 128-wide decoder and memory, trained at 256 px
# and fine-tuned at 384 then 512 px, small enough to train on a CPU and to run interactively
# without a GPU (see docs/shipped_model.md).
_MICRO = HieraConfig(
    embed_dim=32, num_heads=1, stages=(1, 2, 3, 1), global_att_blocks=(5,), window_spec=(8, 8, 8, 8)
)

# The micro trunk grown deeper (a block more at strides 4 and 8, three more at stride 16), for
# growing the built-in model from the micro one without losing what it learned (training/grow.py).
_MINI = HieraConfig(
    embed_dim=32, num_heads=1, stages=(2, 3, 6, 1), global_att_blocks=(7, 10), window_spec=(8, 8, 8, 8)
)

_SIZES = {"tiny": _TINY, "small": _SMALL, "base_plus": _BASE_PLUS, "large": _LARGE}


def _official_presets() -> dict[str, SAM2Config]:
    presets = {}
    for version, prefix in (("2", "sam2"), ("2.1", "sam2.1")):
        for size, trunk in _SIZES.items():
            name = f"{prefix}_hiera_{size}"
            presets[name] = SAM2Config(
                name=name,
                trunk=trunk,
                version=version,
                checkpoint_file=f"{name}.pt",
                aliases=(f"facebook/{prefix}-hiera-{size.replace('_', '-')}",),
            )
    return presets


_MICRO_MODEL = SAM2Config(
    name="napari_sam2_micro",
    trunk=_MICRO,
    image_size=512,
    d_model=128,
    memory_attention_layers=2,
    checkpoint_file="napari_sam2_micro.pt",
)

PRESETS: dict[str, SAM2Config] = {
    **_official_presets(),
    "sam2.1_hiera_test": SAM2Config(name="sam2.1_hiera_test", trunk=_TEST, image_size=256),
    "napari_sam2_micro": _MICRO_MODEL,
    "napari_sam2_mini": replace(
        _MICRO_MODEL, name="napari_sam2_mini", trunk=_MINI, checkpoint_file="napari_sam2_mini.pt"
    ),
}


def get_config(name: str) -> SAM2Config:
    """The preset called `name` (or one of its aliases, e.g. a Hugging Face id)."""
    if name in PRESETS:
        return PRESETS[name]
    for config in PRESETS.values():
        if name in config.aliases:
            return config
    known = ", ".join(PRESETS)
    raise KeyError(f"Unknown model preset {name!r}. Known presets: {known}.")
