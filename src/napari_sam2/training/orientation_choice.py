"""How many orientations a model's prompts should be averaged over (`engine.orientations`),
chosen on validation images within the time an embedding may take."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..engine.orientations import CHOICES
from ..engine.predictor import ImagePredictor
from ..modeling.sam2 import SAM2Model
from .real_eval import Sample, by_modality, interactive

EMBEDDING_BUDGET = 0.25  # seconds for a 512 x 512 image on the machine that chooses


def embedding_seconds(model: SAM2Model, orientations: int, size: int = 512, repeats: int = 5) -> float:
    """Median time to embed a `size` x `size` image in `orientations` orientations ('auto'
    precision, after one warm-up)."""
    image = np.random.default_rng(0).integers(0, 4096, (size, size)).astype(np.uint16)
    predictor = ImagePredictor(model, precision="auto", orientations=orientations)
    predictor.set_image(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.set_image(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def choose_orientations(
    model: SAM2Model,
    samples: list[Sample],
    max_objects: int = 20,
    budget: float = EMBEDDING_BUDGET,
    log: Callable[[str], None] = print,
) -> tuple[int, list[dict]]:
    """The number of orientations with the best mean of click, box and click + 2 corrections IoU
    (averaged over modalities) among those whose 512 px embedding fits in `budget` seconds;
    returns it and every count's figures."""
    table = []
    for n in CHOICES:
        seconds = embedding_seconds(model, n)
        per = {m: interactive(model, group, max_objects, orientations=n) for m, group in by_modality(samples).items()}
        score = float(np.mean([np.mean([r["click"], r["box"], r["click_2_corrections"]]) for r in per.values()]))
        table.append({"orientations": n, "score": score, "embedding_seconds_512": round(seconds, 3), "per_modality": per})
        log(f"{n} orientations: score {score:.3f}, embedding {seconds:.3f} s; " + ", ".join(
            f"{m} click {r['click']:.3f} box {r['box']:.3f} click+2 {r['click_2_corrections']:.3f}" for m, r in per.items()
        ))
    fitting = [row for row in table if row["embedding_seconds_512"] <= budget or row["orientations"] == 1]
    return max(fitting, key=lambda row: row["score"])["orientations"], table


def orientation_metadata(model: SAM2Model, samples: list[Sample], where: str) -> dict:
    """`choose_orientations` on `samples` (from the folder named `where`), as the weights'
    metadata records it (`prompt_orientations`, read by `load_model`)."""
    chosen, grid = choose_orientations(model, samples)
    return {
        "orientations": chosen, "chosen_on": f"{len(samples)} images of {where}",
        "embedding_budget_seconds": EMBEDDING_BUDGET, "grid": grid,
    }
