"""Batch throughput: images per minute, sequential vs dynamically batched vs a dask LocalCluster.

    python benchmarks/batch.py [--images 16] [--size 256] [--variant sam2.1_hiera_tiny]
                               [--image-size 512] [--points-per-side 8] [--workers 2]

Segment everything on the same synthetic nuclei images (random weights saved as a checkpoint,
so that workers load it themselves) three ways: one image per encoder pass, encoder batches
sized from free memory, and one task per image on a LocalCluster of single-threaded worker
processes. Each row is one `run_batch` call, model loading included; the cluster is started and
torch imported on its workers before timing. The last column checks that
every way wrote the same label files.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import torch
from common import machine_line, print_table

from napari_sam2 import build_model
from napari_sam2.batch import run_batch
from napari_sam2.synthetic import nuclei_image

# Random weights give no confident masks: loosen the filters so that masks are produced.
AMG_PARAMS = dict(pred_iou_thresh=0.45, stability_score_thresh=0.2, stability_score_offset=0.05)


def labels_of(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*_labels.tif"))}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--variant", default="sam2.1_hiera_tiny")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--points-per-side", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    amg = dict(AMG_PARAMS, points_per_side=args.points_per_side)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        model = build_model(args.variant, device="cpu", image_size=args.image_size)
        checkpoint = root / "model.pt"
        torch.save({"model": model.state_dict()}, checkpoint)
        inputs = root / "inputs"
        inputs.mkdir()
        for i in range(args.images):
            tifffile.imwrite(inputs / f"img{i:03d}.tif", nuclei_image((args.size, args.size), 12, seed=i)[0])

        def run(name: str, **options):
            summary = run_batch(inputs, root / name, model=checkpoint, image_size=args.image_size,
                                **amg, **options)
            assert len(summary.ok) == args.images, summary.failed
            return summary

        rows, reference = [], None
        for name, options in (("sequential (batch 1)", {"batch_size": 1}), ("dynamically batched", {})):
            summary = run(name.split()[0], **options)
            outputs = labels_of(root / name.split()[0])
            reference = reference or (summary.images_per_minute, outputs)
            rows.append([name, args.images, summary.seconds, summary.images_per_minute,
                         summary.images_per_minute / reference[0], same(outputs, reference[1])])
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("napari_sam2.batch.work"))  # torch imported on every worker
            summary = run("cluster", client=client)
            rows.append([f"LocalCluster, {args.workers} workers x 1 thread", args.images, summary.seconds,
                         summary.images_per_minute, summary.images_per_minute / reference[0],
                         same(labels_of(root / "cluster"), reference[1])])
    print(machine_line())
    print_table(
        f"Batch segment-everything: {args.images} images {args.size}x{args.size}, {args.variant} at "
        f"{args.image_size} px, {args.points_per_side}x{args.points_per_side} grid",
        ["run", "images", "seconds", "images / min", "vs sequential", "same labels"],
        rows,
    )


if __name__ == "__main__":
    main()
