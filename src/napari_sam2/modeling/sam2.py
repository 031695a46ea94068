"""The SAM 2 network and its per-frame primitives.

Tensors are batch-first. Points are (x, y) in model-input pixels (0..image_size); callers scale
from image pixels. The tracking logic (which memories to use) lives outside, in the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .config import SAM2Config
from .image_encoder import ImageEncoder
from .mask_decoder import DecoderOutput, MaskDecoder
from .two_way_transformer import ImageProjections
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .position_encoding import sine_encoding_1d
from .prompt_encoder import LABEL_PAD, PromptEncoder

NO_OBJECT_SCORE = -1024.0  # logit given to every pixel of an object judged absent


@dataclass
class ImageFeatures:
    """What the image encoder gives for a batch of frames."""

    embedding: torch.Tensor  # (B, C, h, w) stride-16 features, without the no-memory embedding
    pos: torch.Tensor  # (B, C, h, w) their sine position encoding
    high_res: list[torch.Tensor]  # [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)] decoder skip features

    def select(self, index: int | slice) -> ImageFeatures:
        """The features of some frames of the batch (keeping the batch dimension)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return ImageFeatures(self.embedding[index], self.pos[index], [f[index] for f in self.high_res])


@dataclass
class FrameOutput:
    """One decoded frame of a tracked object (batch = objects)."""

    low_res_masks: torch.Tensor  # (B, 1, 4h, 4w) logits of the chosen mask
    high_res_masks: torch.Tensor  # (B, 1, S, S) the same at model-input size
    iou: torch.Tensor  # (B, 1) predicted IoU of the chosen mask
    obj_ptr: torch.Tensor  # (B, C) object pointer
    object_score: torch.Tensor  # (B, 1) presence logit
    multimasks: torch.Tensor | None = None  # (B, M, 4h, 4w) all candidate logits
    multimask_iou: torch.Tensor | None = None  # (B, M)


@dataclass
class SpatialMemory:
    """The memory of one frame as the memory attention reads it."""

    features: torch.Tensor  # (B, mem_dim, h, w)
    pos: torch.Tensor  # (B, mem_dim, h, w)
    slot: int  # index into maskmem_tpos_enc: 0 = previous frame ... num_maskmem-1 = conditioning


class SAM2Model(nn.Module):
    """Module attribute names equal the keys of the official checkpoints."""

    def __init__(self, config: SAM2Config) -> None:
        super().__init__()
        self.config = config
        d, mem = config.d_model, config.mem_dim
        self.image_encoder = ImageEncoder(config.trunk, d)
        self.memory_attention = MemoryAttention(d, mem, config.memory_attention_layers)
        self.memory_encoder = MemoryEncoder(d, mem)
        self.sam_prompt_encoder = PromptEncoder(d, config.image_size, config.feat_size)
        self.sam_mask_decoder = MaskDecoder(
            d,
            stability_delta=config.dynamic_multimask_stability_delta,
            stability_thresh=config.dynamic_multimask_stability_thresh,
        )
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, d))  # kept for checkpoint parity
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, d))
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.obj_ptr_proj = MLP(d, d, d, 3)
        if config.is_v21:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem))
            self.obj_ptr_tpos_proj = nn.Linear(d, mem)
        else:
            self.no_obj_embed_spatial = None
            self.obj_ptr_tpos_proj = None
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)
        if self.no_obj_embed_spatial is not None:
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def dtype(self) -> torch.dtype:
        return self.no_mem_embed.dtype

    # ------------------------------------------------------------------ images

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """Normalised (B, 3, S, S) images -> features for the decoder and the memory."""
        features, positions = self.image_encoder(images)
        high_res = [
            self.sam_mask_decoder.conv_s0(features[0]),
            self.sam_mask_decoder.conv_s1(features[1]),
        ]
        return ImageFeatures(features[2], positions[2], high_res)

    def add_no_memory(self, embedding: torch.Tensor) -> torch.Tensor:
        """Condition features on 'no memory': single images and first prompted frames."""
        return embedding + self.no_mem_embed.reshape(1, -1, 1, 1)

    def decode(
        self,
        embedding: torch.Tensor,
        high_res: list[torch.Tensor],
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        pad_empty_prompt: bool = True,
        image_pe: torch.Tensor | None = None,
        projected: ImageProjections | None = None,
    ) -> DecoderOutput:
        """Run the prompt encoder and mask decoder.

        points: (B, N, 2) (x, y) in model-input pixels; labels: (B, N) (1 positive, 0 negative,
        2/3 box corners, -1 padding); mask_input: (B, 1, H, W) logits, resized to 4h x 4w.
        A single embedding (batch 1) serves all B prompt sets. Without points, one padding
        point is decoded (as tracking does) unless pad_empty_prompt is False (image prompts).
        image_pe: the position encoding of the embedding's cells when it is a window of the grid.
        projected: `project_image(embedding)`, made once per image; only without mask_input.
        """
        if projected is not None and mask_input is not None:
            raise ValueError("projected image tokens hold the no-mask prompt; a mask_input changes them.")
        batch = self._prompt_batch(embedding, points, mask_input)
        if points is None and pad_empty_prompt:
            points = embedding.new_zeros(batch, 1, 2)
            labels = torch.full((batch, 1), LABEL_PAD, dtype=torch.int32, device=embedding.device)
        if mask_input is not None:
            h, w = embedding.shape[-2:]
            mask_input = self.resize_mask_prompt(mask_input, (4 * h, 4 * w))
        sparse, dense = self.sam_prompt_encoder(points, labels, mask_input, batch, tuple(embedding.shape[-2:]))
        return self.sam_mask_decoder(
            image_embeddings=embedding,
            image_pe=self.sam_prompt_encoder.dense_pe() if image_pe is None else image_pe,
            sparse_prompts=sparse.to(embedding.dtype),
            dense_prompts=dense.to(embedding.dtype),
            high_res_features=high_res,
            multimask_output=multimask_output,
            repeat_image=True,
            projected=projected,
        )

    def project_image(self, embedding: torch.Tensor, image_pe: torch.Tensor | None = None) -> ImageProjections:
        """What the decoder computes from one image (1, C, h, w) alone, for every click and box
        on it without a mask prompt (`decode(..., projected=)`)."""
        pe = self.sam_prompt_encoder.dense_pe() if image_pe is None else image_pe
        dense = self.sam_prompt_encoder.embed_mask(None, 1, tuple(embedding.shape[-2:])).to(embedding.dtype)
        return self.sam_mask_decoder.project_image(embedding, pe, dense)

    @staticmethod
    def _prompt_batch(embedding, points, mask_input) -> int:
        if points is not None:
            return points.shape[0]
        if mask_input is not None:
            return mask_input.shape[0]
        return embedding.shape[0]

    def resize_mask_prompt(self, mask: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Mask-prompt logits (B, 1, H, W) at the prompt encoder's input size (4x the embedding),
        or at `size` (4x a window of it)."""
        size = self.sam_prompt_encoder.mask_input_size if size is None else size
        if mask.shape[-2:] == size:
            return mask
        return F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=False, antialias=True)

    def upscale(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits (B, M, 4h, 4w) -> (B, M, 16h, 16w) at model-input size (the whole
        input, or the window the logits cover), in fp32."""
        size = (4 * low_res.shape[-2], 4 * low_res.shape[-1])
        return F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)

    # ------------------------------------------------------------------ frames

    def decode_frame(
        self,
        embedding: torch.Tensor,
        high_res: list[torch.Tensor],
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = False,
        image_pe: torch.Tensor | None = None,
    ) -> FrameOutput:
        """Decode one (memory-conditioned) frame of tracked objects.

        Absent objects (object score <= 0) get NO_OBJECT_SCORE logits; with multimask output
        the mask with the highest predicted IoU is chosen; the object pointer comes from its token.
        """
        out = self.decode(embedding, high_res, points, labels, mask_input, multimask_output, image_pe=image_pe)
        present = out.object_score > 0
        multimasks = torch.where(present[:, :, None, None], out.masks, NO_OBJECT_SCORE).float()
        tokens, iou = out.tokens, out.iou
        if multimask_output:
            rows = torch.arange(multimasks.shape[0], device=multimasks.device)
            best = iou.argmax(dim=-1)
            low_res = multimasks[rows, best].unsqueeze(1)
            chosen_iou = iou[rows, best].unsqueeze(1)
            token = tokens[rows, best] if tokens.shape[1] > 1 else tokens[:, 0]
        else:
            low_res, chosen_iou, token = multimasks, iou, tokens[:, 0]
        obj_ptr = self.object_pointer(self.obj_ptr_proj(token), out.object_score)
        return FrameOutput(
            low_res_masks=low_res,
            high_res_masks=self.upscale(low_res),
            iou=chosen_iou,
            obj_ptr=obj_ptr,
            object_score=out.object_score,
            multimasks=multimasks,
            multimask_iou=iou,
        )

    def object_pointer(self, pointer: torch.Tensor, object_score: torch.Tensor) -> torch.Tensor:
        """The pointer of present objects; the learned no-object pointer for absent ones."""
        present = (object_score > 0).to(pointer.dtype)
        return present * pointer + (1 - present) * self.no_obj_ptr

    def mask_as_output(
        self, embedding: torch.Tensor, high_res: list[torch.Tensor], masks: torch.Tensor
    ) -> FrameOutput:
        """Use a given (B, 1, S, S) binary mask as the frame's output (a mask prompt).

        The logits are the mask scaled to +/-10; the object pointer comes from decoding the
        un-conditioned features with the mask as dense prompt.
        """
        masks = masks.float()
        high_res_logits = masks * 20.0 - 10.0
        size = (high_res_logits.shape[-2] // 4, high_res_logits.shape[-1] // 4)
        low_res = F.interpolate(
            high_res_logits, size=size, mode="bilinear", align_corners=False, antialias=True
        )
        decoded = self.decode_frame(
            embedding, high_res, mask_input=self.mask_downsample(masks.to(embedding.dtype))
        )
        present = masks.flatten(1).gt(0).any(dim=1, keepdim=True).float()
        object_score = present * 20.0 - 10.0
        pointer = self.object_pointer(decoded.obj_ptr, object_score)
        return FrameOutput(
            low_res_masks=low_res,
            high_res_masks=high_res_logits,
            iou=masks.new_ones(masks.shape[0], 1),
            obj_ptr=pointer,
            object_score=object_score,
        )

    # ------------------------------------------------------------------ memory

    def condition_on_memory(
        self,
        embedding: torch.Tensor,
        pos: torch.Tensor,
        memories: list[SpatialMemory],
        pointers: list[tuple[torch.Tensor, int]],
        max_pointers: int,
        places: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    ) -> torch.Tensor:
        """Attend the frame's (B, C, h, w) features to earlier frames' memories.

        pointers: (obj_ptr (B, C), temporal distance) pairs; the distance is scaled by
        max_pointers - 1 for the temporal encoding (SAM 2.1; SAM 2 gives pointers no position).
        places: where the tokens lie in the frame's grid when the features and memories are
        windows of it (`MemoryAttention`).
        """
        b, c, h, w = embedding.shape
        mem_dim = self.config.mem_dim
        tokens, token_pos = [], []
        for memory in memories:
            tokens.append(memory.features.flatten(2).transpose(1, 2))
            enc = memory.pos.flatten(2).transpose(1, 2) + self.maskmem_tpos_enc[memory.slot].reshape(1, 1, -1)
            token_pos.append(enc)
        num_ptr_tokens = 0
        if pointers:
            ptrs = torch.stack([p for p, _ in pointers], dim=1)  # (B, P, C)
            if self.obj_ptr_tpos_proj is not None:
                distances = torch.tensor([float(t) for _, t in pointers], device=embedding.device)
                scale = max(max_pointers - 1, 1)
                ptr_pos = self.obj_ptr_tpos_proj(sine_encoding_1d(distances / scale, c))
                ptr_pos = ptr_pos.unsqueeze(0).expand(b, -1, -1)
            else:
                ptr_pos = ptrs.new_zeros(b, len(pointers), mem_dim)
            # Each C-wide pointer becomes C / mem_dim consecutive tokens.
            split = c // mem_dim
            ptrs = ptrs.reshape(b, -1, mem_dim)
            ptr_pos = ptr_pos.repeat_interleave(split, dim=1)
            tokens.append(ptrs)
            token_pos.append(ptr_pos)
            num_ptr_tokens = ptrs.shape[1]
        dtype = embedding.dtype
        memory = torch.cat([t.to(dtype) for t in tokens], dim=1)
        memory_pos = torch.cat([t.to(dtype) for t in token_pos], dim=1)
        out = self.memory_attention(
            embedding.flatten(2).transpose(1, 2),
            pos.flatten(2).transpose(1, 2),
            memory,
            memory_pos,
            num_obj_ptr_tokens=num_ptr_tokens,
            places=places,
        )
        return out.transpose(1, 2).reshape(b, c, h, w)

    def encode_memory(
        self,
        embedding: torch.Tensor,
        high_res_masks: torch.Tensor,
        object_score: torch.Tensor,
        binarize: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory of a frame from its raw (B, C, h, w) features and (B, 1, S, S) mask logits.

        binarize: use the thresholded mask instead of its sigmoid (for masks from clicks).
        """
        if binarize:
            mask = (high_res_masks > 0).float()
        else:
            mask = torch.sigmoid(high_res_masks)
        mask = mask * self.config.sigmoid_scale_for_mem_enc + self.config.sigmoid_bias_for_mem_enc
        features, pos = self.memory_encoder(embedding, mask.to(embedding.dtype))
        if self.no_obj_embed_spatial is not None:
            absent = (object_score <= 0).to(features.dtype)[..., None, None]
            features = features + absent * self.no_obj_embed_spatial[..., None, None]
        return features, pos
