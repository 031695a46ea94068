"""Prompted and automatic segmentation: ours (fp32 and fast path) beside the official, one run.

    python benchmarks/image_segmentation.py [--variant sam2.1_hiera_tiny] [--repeats 3]

Same random weights on both sides. Rows: set_image (1024x1024 RGB), predict (one click,
3 masks at image size), predict_boxes (64 boxes), automatic masks (32x32 grid, 512x512 RGB).
Ratios are ours / official fp32.

Random weights give masks that cover most of the image. A trained model's mask of a nucleus is
small, and we upscale only around it (engine/upscale.py); the row "1 click, nucleus-sized mask"
lowers our decoder's logits outside a 48 px disc around the click by 20 (an extra operation,
counted) to show that case. The official's upscaling does not depend on the mask: its figure is
its plain click.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch
from common import have_oracle, machine_line, print_table, time_call

from napari_sam2 import build_model
from napari_sam2.engine.automatic import AutomaticMaskGenerator
from napari_sam2.engine.predictor import ImagePredictor

# Random weights give no confident masks: loosen the filters so that masks are produced.
AMG_PARAMS = dict(points_per_side=32, pred_iou_thresh=0.45, stability_score_thresh=0.2, stability_score_offset=0.05)


def test_image(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = rng.normal(40, 8, (size, size))
    for _ in range(30):
        cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(0.02, 0.08) * size]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(60, 180)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, -1)


@contextmanager
def _nucleus_sized_masks(model, xy, radius: int):
    """Our decoder's mask logits lowered by 20 outside a disc (image pixels) around xy."""
    decode = model.sam_mask_decoder.forward

    def forward(*args, **kwargs):
        out = decode(*args, **kwargs)
        h, w = out.masks.shape[-2:]
        scale = h / model.image_size
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        outside = (yy - xy[1] * scale) ** 2 + (xx - xy[0] * scale) ** 2 > (radius * scale) ** 2
        return replace(out, masks=out.masks - 20 * outside)

    model.sam_mask_decoder.forward = forward
    try:
        yield
    finally:
        del model.sam_mask_decoder.forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="sam2.1_hiera_tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-amg", action="store_true")
    args = parser.parse_args()
    image, small = test_image(1024), test_image(512, seed=1)
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, 800, 64), rng.uniform(0, 800, 64)
    boxes = np.stack([x0, y0, x0 + rng.uniform(20, 200, 64), y0 + rng.uniform(20, 200, 64)], 1)
    click = np.array([[400.0, 380.0]])

    model = build_model(args.variant, device="cpu")
    ref = None
    if have_oracle():
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        from tests.parity.oracle import build_oracle

        ref_model = build_oracle(args.variant)
        model.load_state_dict(ref_model.state_dict())
        ref = SAM2ImagePredictor(ref_model)
    exact, fast = ImagePredictor(model, precision="fp32"), ImagePredictor(model, precision="auto")
    rows = []

    def row(name, ours32, ours_fast, official, note=""):
        rows.append([name, ours32, ours_fast, official, ours32 / official, ours_fast / official, note])

    with torch.inference_mode():
        r = args.repeats
        t_ref = time_call(lambda: ref.set_image(image), r) if ref else float("nan")
        row("set_image 1024x1024", time_call(lambda: exact.set_image(image), r), time_call(lambda: fast.set_image(image), r), t_ref)
        t_ref = time_call(lambda: ref.predict(click, np.array([1])), r * 3) if ref else float("nan")
        row("predict, 1 click", time_call(lambda: exact.predict(points=click), r * 3), time_call(lambda: fast.predict(points=click), r * 3), t_ref)
        with _nucleus_sized_masks(model, click[0], 48):
            row("predict, 1 click, nucleus-sized mask", time_call(lambda: exact.predict(points=click), r * 3),
                time_call(lambda: fast.predict(points=click), r * 3), t_ref, "official: its plain click")
        t_ref = time_call(lambda: ref.predict(box=boxes, multimask_output=False), r) if ref else float("nan")
        row("predict_boxes, 64 boxes", time_call(lambda: exact.predict_boxes(boxes), r), time_call(lambda: fast.predict_boxes(boxes), r), t_ref)
        if not args.skip_amg:
            counts = {}

            def amg(precision):
                def run():
                    counts[precision] = len(AutomaticMaskGenerator(model, precision=precision, **AMG_PARAMS).generate(small, normalization=None))
                return run

            t_ref = float("nan")
            if ref:
                def run_ref():
                    counts["official"] = len(SAM2AutomaticMaskGenerator(ref.model, **AMG_PARAMS).generate(small))
                t_ref = time_call(run_ref, 1, warmup=0)
            t32 = time_call(amg("fp32"), 1, warmup=0)
            tfast = time_call(amg("auto"), 1, warmup=0)
            row("automatic masks, 32x32 grid, 512x512", t32, tfast, t_ref,
                f"masks: ours {counts['fp32']} / fast {counts['auto']} / official {counts.get('official')}")
    print(machine_line(), f"; fast path = {fast.dtype}")
    print_table(
        f"Image segmentation, {args.variant} (seconds)",
        ["operation", "ours fp32", "ours fast", "official fp32", "fp32 ratio", "fast ratio", "note"],
        rows,
    )


if __name__ == "__main__":
    main()
