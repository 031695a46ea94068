"""How many images to embed at once: as many as fit in half the free memory, up to a cap.

The image encoder's peak memory grows linearly with the batch; per image it is about 20 float
tensors of stride-4 tokens x the trunk's width (measured: 115 MB for tiny at 512 px, so
~450 MB at 1024 px), plus the prepared image and the embedding kept until it is decoded.
"""

from __future__ import annotations


ACTIVATION_FACTOR = 20
MAX_BATCH = {"cpu": 4, "cuda": 32, "mps": 8}  # beyond this a CPU gains nothing, a GPU little


def bytes_per_image(model, frame_hw: tuple[int, int]) -> int:
    """Estimated peak bytes one image adds to a batch through the encoder."""
    size = model.image_size
    tokens = (size // 4) ** 2
    width = model.config.trunk.embed_dim
    activations = ACTIVATION_FACTOR * tokens * width * 4
    kept = (model.config.d_model * (size // 16) ** 2 + 32 * tokens + 64 * tokens // 4) * 4
    prepared = frame_hw[0] * frame_hw[1] * 3 * 4 * 2  # float RGB and its resized copy
    return activations + kept + prepared


def available_bytes(device) -> int:
    """Free memory of the device: GPU memory for CUDA, else the machine's available RAM."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    from ..images.checks import available_ram

    free = available_ram()
    return 4 << 30 if free is None else free  # unknown: assume 4 GB


def auto_batch_size(model, frame_hw: tuple[int, int], free: int | None = None) -> int:
    """Images per encoder batch for frames of `frame_hw` with `model` on its device."""
    device = model.device
    free = available_bytes(device) if free is None else free
    cap = MAX_BATCH.get(device.type, 4)
    return max(1, min(cap, int(0.5 * free) // bytes_per_image(model, frame_hw)))
