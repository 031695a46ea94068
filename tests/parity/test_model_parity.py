"""Our network against the reference implementation, on the same random weights, in fp32.

Each variant's reference model gets seeded random weights (noise on every parameter), is saved in
the official checkpoint format and loaded with `load_model(path)`, which must recognise the
variant. Outputs must agree to 1e-4 relative to their magnitude: max|ours - ref| <= 1e-4 * max(1,
max|ref|), since random weights give logits of very different scales from one variant to another.
"""

from __future__ import annotations

import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.modeling import SpatialMemory

from .oracle import (
    CONFIG_FILES,
    build_oracle,
    requires_oracle,
    save_official_checkpoint,
)

pytestmark = [requires_oracle, pytest.mark.oracle]

# tiny runs at full resolution; the larger variants at 256 px to keep CI fast.
IMAGE_SIZES = {name: (1024 if "tiny" in name else 256) for name in CONFIG_FILES}


def assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str, rtol: float = 1e-4) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    scale = max(1.0, ref.abs().max().item())
    err = (ours.float() - ref.float()).abs().max().item()
    assert err <= rtol * scale, f"{what}: max abs diff {err:.3g} > {rtol} * {scale:.3g}"


@pytest.fixture(scope="module", params=list(CONFIG_FILES))
def pair(request, tmp_path_factory):
    """(reference model, our model loaded from its official-format checkpoint, image size)."""
    preset = request.param
    size = IMAGE_SIZES[preset]
    ref = build_oracle(preset, image_size=size, video=True)
    path = save_official_checkpoint(ref, tmp_path_factory.mktemp(preset) / "weights.pt")
    ours = load_model(path, device="cpu", image_size=size)
    path.unlink()  # up to 0.9 GB: free the disk as soon as the weights are loaded
    assert ours.config.name == preset, "variant not recognised from the checkpoint's tensors"
    yield ref, ours, size
    del ref, ours


@pytest.fixture(scope="module")
def encoded(pair):
    """Both models' features of the same random image."""
    ref, ours, size = pair
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref_out = ref.forward_image(image)
        our_out = ours.encode_image(image)
    return ref_out, our_out


def test_image_encoder(encoded):
    ref_out, our_out = encoded
    fpn = ref_out["backbone_fpn"]
    assert_close(our_out.high_res[0], fpn[0], "stride-4 level (after conv_s0)")
    assert_close(our_out.high_res[1], fpn[1], "stride-8 level (after conv_s1)")
    assert_close(our_out.embedding, fpn[2], "stride-16 level")
    assert_close(our_out.pos, ref_out["vision_pos_enc"][2], "stride-16 position encoding")
    assert our_out.embedding.abs().mean() > 0.1, "degenerate features: the test would prove little"


def _ref_image_embedding(ref, ref_out):
    """The features the reference image predictor decodes from (with the no-memory embedding)."""
    _, feats, _, sizes = ref._prepare_backbone_features(dict(ref_out))
    feats = [f.permute(1, 2, 0).reshape(1, -1, *s) for f, s in zip(feats, sizes)]
    return feats[-1] + ref.no_mem_embed.reshape(1, -1, 1, 1), feats[:-1]


PROMPTS = {
    "one click": ([[[300.0, 200.0]]], [[1]], None),
    "mixed clicks": ([[[300.0, 200.0], [500.0, 640.0], [90.0, 900.0]]], [[1, 0, 1]], None),
    "box": ([[[100.0, 150.0], [700.0, 600.0]]], [[2, 3]], None),
    "box and clicks": ([[[100.0, 150.0], [700.0, 600.0], [400.0, 400.0], [650.0, 580.0]]], [[2, 3, 1, 0]], None),
    "mask": (None, None, "mask"),
    "click and mask": ([[[300.0, 200.0]]], [[1]], "mask"),
    "three boxes at once": (
        [[[10.0, 10.0], [200.0, 300.0]], [[400.0, 420.0], [900.0, 1000.0]], [[0.0, 0.0], [1023.0, 1023.0]]],
        [[2, 3], [2, 3], [2, 3]],
        None,
    ),
}


@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_decoder(pair, encoded, prompt, multimask):
    ref, ours, size = pair
    ref_out, our_out = encoded
    coords, labels, mask_kind = PROMPTS[prompt]
    points = label_t = mask = None
    if coords is not None:
        points = torch.tensor(coords) * (size / 1024)  # prompts are given at 1024 px
        label_t = torch.tensor(labels, dtype=torch.int32)
    if mask_kind:
        mask = 4 * torch.randn(1, 1, size // 4, size // 4, generator=torch.Generator().manual_seed(5))
    batch = points.shape[0] if points is not None else 1
    with torch.inference_mode():
        embed, high_res = _ref_image_embedding(ref, ref_out)
        if points is None:  # the reference predictor pads an empty prompt with one (0, 0) / -1 point
            ref_points = (torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32))
        else:
            ref_points = (points, label_t)
        sparse, dense = ref.sam_prompt_encoder(points=ref_points, boxes=None, masks=mask)
        ref_masks, ref_iou, _, ref_obj = ref.sam_mask_decoder(
            image_embeddings=embed,
            image_pe=ref.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=batch > 1,
            high_res_features=high_res,
        )
        out = ours.decode(
            ours.add_no_memory(our_out.embedding),
            our_out.high_res,
            points=points,
            labels=label_t,
            mask_input=mask,
            multimask_output=multimask,
        )
    assert_close(out.masks, ref_masks, "mask logits")
    assert_close(out.iou, ref_iou, "predicted IoU")
    assert_close(out.object_score, ref_obj, "object score")
    positive = (ref_masks > 0).float().mean().item()
    assert 0.0 < positive < 1.0, "reference masks are empty or full: the comparison would prove little"


def test_frame_decoding_and_mask_as_output(pair, encoded):
    """decode_frame (object pointers, absent objects) and mask prompts used as the output."""
    ref, ours, size = pair
    ref_out, our_out = encoded
    _, feats, _, sizes = ref._prepare_backbone_features(dict(ref_out))
    feats = [f.permute(1, 2, 0).reshape(1, -1, *s) for f, s in zip(feats, sizes)]
    points = torch.tensor([[[300.0, 200.0]]]) * (size / 1024)
    labels = torch.ones(1, 1, dtype=torch.int32)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : size // 2, size // 3 : size // 2 + 7] = 1
    with torch.inference_mode():
        for multimask in (True, False):
            ref_res = ref._forward_sam_heads(
                feats[-1], {"point_coords": points, "point_labels": labels}, None, feats[:-1], multimask
            )
            res = ours.decode_frame(our_out.embedding, our_out.high_res, points, labels, None, multimask)
            assert_close(res.low_res_masks, ref_res[3], "chosen low-res mask")
            assert_close(res.high_res_masks, ref_res[4], "chosen high-res mask")
            assert_close(res.obj_ptr, ref_res[5], "object pointer")
            assert_close(res.object_score, ref_res[6], "object score")
        for m in (mask, torch.zeros_like(mask)):  # an empty mask means the object is absent
            ref_res = ref._use_mask_as_output(feats[-1], feats[:-1], m)
            res = ours.mask_as_output(our_out.embedding, our_out.high_res, m)
            assert_close(res.low_res_masks, ref_res[3], "mask prompt, low-res")
            assert_close(res.obj_ptr, ref_res[5], "mask prompt, object pointer")
            assert_close(res.object_score, ref_res[6], "mask prompt, object score")


def _seq_first(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (HW, B, C), the reference's token layout."""
    return x.flatten(2).permute(2, 0, 1)


def test_memory_encoder(pair):
    ref, ours, size = pair
    g = torch.Generator().manual_seed(7)
    h = size // 16
    features = torch.randn(2, 256, h, h, generator=g)
    masks = 8 * torch.randn(2, 1, size, size, generator=g)
    scores = torch.tensor([[3.0], [-2.0]])  # one present, one absent object (2.1: no-object embedding)
    with torch.inference_mode():
        for from_points in (False, True):
            ref_feat, ref_pos = ref._encode_new_memory([_seq_first(features)], [(h, h)], masks, scores, from_points)
            feat, pos = ours.encode_memory(features, masks, scores, binarize=from_points)
            assert_close(feat, ref_feat, f"memory features (binarized={from_points})")
            assert_close(pos, ref_pos[0], "memory position encoding")


def test_memory_attention(pair):
    ref, ours, size = pair
    g = torch.Generator().manual_seed(11)
    h = size // 16
    n, b, ptr_tokens = h * h, 2, 12
    current, current_pos = torch.randn(n, b, 256, generator=g), torch.randn(n, b, 256, generator=g)
    memory = torch.randn(3 * n + ptr_tokens, b, 64, generator=g)
    memory_pos = torch.randn(3 * n + ptr_tokens, b, 64, generator=g)
    with torch.inference_mode():
        expected = ref.memory_attention(current, memory, current_pos, memory_pos, num_obj_ptr_tokens=ptr_tokens)
        got = ours.memory_attention(
            current.transpose(0, 1),
            current_pos.transpose(0, 1),
            memory.transpose(0, 1),
            memory_pos.transpose(0, 1),
            num_obj_ptr_tokens=ptr_tokens,
        )
    assert_close(got.transpose(0, 1), expected, "memory attention output")


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_condition_on_memory(pair, reverse):
    """Memory slots, object pointers and their temporal encodings, as the reference assembles them.

    Frames 0..9; a conditioning frame at 0 (forward) or 9 (reverse), tracked frames next to it;
    the current frame is 4 (forward) or 5 (reverse)."""
    ref, ours, size = pair
    g = torch.Generator().manual_seed(13)
    h, b = size // 16, 1

    def frame_output(present: bool):
        return {
            "maskmem_features": torch.randn(b, 64, h, h, generator=g),
            "maskmem_pos_enc": [torch.randn(b, 64, h, h, generator=g)],
            "obj_ptr": torch.randn(b, 256, generator=g),
            "object_score_logits": torch.full((b, 1), 1.0 if present else -1.0),
        }

    cond_frame, current = (9, 5) if reverse else (0, 4)
    step = -1 if reverse else 1
    tracked = [cond_frame + step * k for k in (1, 2, 3)]  # frames between the prompt and now
    outputs = {"cond_frame_outputs": {cond_frame: frame_output(True)}, "non_cond_frame_outputs": {}}
    for t in tracked:
        outputs["non_cond_frame_outputs"][t] = frame_output(t != tracked[1])
    embedding = torch.randn(b, 256, h, h, generator=g)
    pos = torch.randn(b, 256, h, h, generator=g)
    with torch.inference_mode():
        expected = ref._prepare_memory_conditioned_features(
            frame_idx=current,
            is_init_cond_frame=False,
            current_vision_feats=[_seq_first(embedding)],
            current_vision_pos_embeds=[_seq_first(pos)],
            feat_sizes=[(h, h)],
            output_dict=outputs,
            num_frames=10,
            track_in_reverse=reverse,
        )
        # The same memory, assembled by hand: the conditioning frame in the last slot, the
        # previous frame in slot 0, the one before in slot 1, ...
        cond = outputs["cond_frame_outputs"][cond_frame]
        memories = [SpatialMemory(cond["maskmem_features"], cond["maskmem_pos_enc"][0], 6)]
        distance_sign = -1 if reverse else 1
        pointers = [(cond["obj_ptr"], (current - cond_frame) * distance_sign)]
        for t in tracked:
            out = outputs["non_cond_frame_outputs"][t]
            gap = abs(current - t)
            memories.append(SpatialMemory(out["maskmem_features"], out["maskmem_pos_enc"][0], gap - 1))
            pointers.append((out["obj_ptr"], gap))
        got = ours.condition_on_memory(embedding, pos, memories, pointers, max_pointers=10)
    assert_close(got, expected, "memory-conditioned features")
