"""Real microscopy: the dataset loader on the shared layout, the object matching and baselines
of the real-data evaluation, per-model segment-everything filters, the shipped CC0 samples and
`napari-sam2 evaluate --data`. Tests reading ../shared/data skip where it is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2.engine.automatic import OFFICIAL_FILTERS, AutomaticMaskGenerator, default_filters
from napari_sam2.images.samples import REAL_SAMPLES, real_sample
from napari_sam2.training.real_data import LabelledDataset, MixedData, dimmed_objects, jittered
from napari_sam2.training.real_eval import iou_matrix, match, otsu_click, otsu_watershed

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DSB = SHARED / "dsb2018"


def needs_shared():
    if not (DSB / "val" / "index.csv").is_file():
        pytest.skip("../shared/data is not here (a user's clone)")


def disks(centres, radius, shape=(64, 64)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint32)
    for i, (y, x) in enumerate(centres, start=1):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = i
    return labels


def test_matching_counts_objects_and_the_dsb_average_precision():
    truth = disks([(16, 16), (16, 48), (48, 32)], 7)
    assert match(truth, truth).f1 == 1.0 and match(truth, truth).average_precision == 1.0
    found = truth.copy()
    found[found == 3] = 0  # one missed
    found[np.s_[2:5, 2:5]] = 9  # one spurious
    m = match(truth, found)
    assert (m.n_true, m.n_found) == (3, 3)
    assert m.f1 == pytest.approx(2 * 2 / 6) and m.average_precision == pytest.approx(2 / 4)
    ious = iou_matrix(truth, found)
    assert ious.shape == (3, 3) and ious[0, 0] == 1.0 and ious[2].max() == 0.0
    assert match(np.zeros((8, 8), np.uint32), np.zeros((8, 8), np.uint32)).f1 == 1.0


def test_classical_baselines_find_bright_and_dark_objects():
    truth = disks([(20, 20), (20, 34), (46, 40)], 8)  # the first two touch
    bright = np.where(truth > 0, 200, 20).astype(np.uint8)
    assert match(truth, otsu_watershed(bright)).f1 == 1.0
    assert match(truth, otsu_watershed(255 - bright)).f1 == 1.0  # dark nuclei (histology)
    alone = otsu_click(bright, np.array([40.0, 46.0]))
    assert (alone == (truth == 3)).all()  # the component under the click
    assert otsu_click(bright, np.array([20.0, 20.0])).sum() == ((truth == 1) | (truth == 2)).sum()


def test_classical_stack_baseline_scores_each_nucleus_by_its_track():
    from napari_sam2.training.real_eval import classical_stack_iou

    zz, yy, xx = np.mgrid[:12, :64, :64]
    labels = np.zeros((12, 64, 64), np.uint32)
    labels[((zz - 4) / 3) ** 2 + ((yy - 20) / 9) ** 2 + ((xx - 20) / 9) ** 2 < 1] = 1  # slices 2-6
    labels[((zz - 8) / 3) ** 2 + ((yy - 44) / 9) ** 2 + ((xx - 40) / 9) ** 2 < 1] = 2  # slices 6-10
    stack = np.where(labels > 0, 200.0, 20.0)
    result = classical_stack_iou(stack, labels)
    assert result["n_objects"] == 2 and result["mean_iou_3d"] > 0.8, result
    half = np.where(labels == 1, 200.0, 20.0)  # the second nucleus not seen: IoU 0 for it
    assert classical_stack_iou(half, labels)["mean_iou_3d"] < 0.55


def test_dataset_loader_reads_the_shared_layout_and_augments_inside_the_image():
    needs_shared()
    fluorescence = LabelledDataset(DSB / "val", ["fluorescence"])
    everything = LabelledDataset(DSB / "val", augment=False)
    assert len(fluorescence.pairs) == 53 and len(everything.pairs) == 65
    raw, labels = everything.image(np.random.default_rng(0))
    assert raw.dtype == np.uint8 and labels.shape == raw.shape[:2] and labels.max() > 0
    rng = np.random.default_rng(1)
    for _ in range(6):
        rgb, lab = fluorescence.image(rng)
        assert rgb.dtype == np.float32 and rgb.shape == lab.shape + (3,)
        assert 0.0 <= rgb.min() and rgb.max() <= 1.0 and max(lab.shape) <= 384 + 1
        assert lab.max() > 0  # crops keep objects (labels resized by nearest neighbour)
    with pytest.raises(FileNotFoundError, match="images/ and labels/"):
        LabelledDataset(DSB)


def test_whole_image_views_keep_the_image_scale_and_most_of_it(tmp_path):
    labels = disks([(30, 40), (90, 120), (60, 200)], 12, shape=(120, 240))
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.where(labels > 0, 3000, 200).astype(np.uint16))
    tifffile.imwrite(tmp_path / "labels" / "a.tif", labels)
    rng = np.random.default_rng(0)
    whole = LabelledDataset(tmp_path, whole_share=1.0)
    for _ in range(8):
        rgb, lab = whole.image(rng)
        h, w = lab.shape
        assert 0.7 * 120 - 1 <= h <= 120 and 0.7 * 240 - 1 <= w <= 240  # unscaled, 70-100% per side
        assert rgb.shape == (h, w, 3)
        windows = [(y, x) for y in range(121 - h) for x in range(241 - w) if (labels[y : y + h, x : x + w] == lab).all()]
        assert windows  # a window of the labels as they are: no rescaling
    crops = LabelledDataset(tmp_path, scale=(2.0, 2.0))  # default: crops, here enlarged 2x
    assert max(crops.image(rng)[1].shape) > 240
    with pytest.raises(ValueError, match="whole_share"):
        LabelledDataset(tmp_path, whole_share=1.5)


def test_cli_whole_images_needs_data(tmp_path, capsys):
    from napari_sam2.cli import main

    code = main(["train", str(tmp_path / "run"), "--synthetic", "--whole-images", "0.4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--whole-images draws views of --data images" in err[0]
    assert not (tmp_path / "run").exists()


def test_dimmed_objects_keep_a_share_of_their_brightness_over_the_background():
    """Some nuclei (and their 2-px halo) keep 8-60% of their brightness above the background;
    the others and the background away from them are untouched; over many draws about 40% of
    the objects are dimmed."""
    labels = disks([(12, 12), (12, 40), (40, 12), (40, 40)], 6)
    raw = np.where(labels > 0, 210.0, 10.0).astype(np.float32)
    rng = np.random.default_rng(0)
    dimmed = 0
    for _ in range(50):
        out = dimmed_objects(raw, labels, rng)
        assert out.dtype == np.float32 and out[60:, 60:].max() == 10.0  # far background
        for obj in range(1, 5):
            level = float(out[labels == obj].mean())
            if level < 209.9:
                dimmed += 1
                assert 10 + 0.08 * 200 - 1e-3 <= level <= 10 + 0.6 * 200 + 1e-3
            else:
                assert level == 210.0
    assert 0.3 < dimmed / 200 < 0.5


def test_mixed_data_draws_each_source_at_its_share():
    class Source:
        has_clips = False

        def __init__(self, value):
            self.value = value

        def image(self, rng, progress=1.0):
            return self.value, None

        def describe(self):
            return str(self.value)

    mixed = MixedData([(Source(0), 0.7), (Source(1), 0.3)])
    rng = np.random.default_rng(0)
    draws = [mixed.image(rng)[0] for _ in range(2000)]
    assert abs(np.mean(draws) - 0.3) < 0.04 and not mixed.has_clips


def test_jittered_limits_stay_ordered_and_vary():
    from napari_sam2.images.normalization import Normalization

    base = Normalization.from_limits(100.0, 1100.0)
    rng = np.random.default_rng(0)
    highs = []
    for _ in range(200):
        n = jittered(base, rng)
        assert n.high[0] > n.low[0]
        highs.append(n.high[0])
    assert min(highs) < 800 < 1400 < max(highs)  # objects sometimes saturate, sometimes dim


def test_segment_everything_filters_come_from_the_model(tmp_path, tiny_checkpoint_with_meta):
    from napari_sam2 import build_model, load_model

    official = build_model("sam2.1_hiera_tiny", image_size=256, device="cpu")
    assert default_filters(official) == OFFICIAL_FILTERS
    path = tiny_checkpoint_with_meta({"segment_everything": {"pred_iou_thresh": 0.55, "stability_score_thresh": 0.8}})
    model = load_model(path, device="cpu")
    generator = AutomaticMaskGenerator(model)
    assert (generator.pred_iou_thresh, generator.stability_score_thresh) == (0.55, 0.8)
    given = AutomaticMaskGenerator(model, pred_iou_thresh=0.9)
    assert (given.pred_iou_thresh, given.stability_score_thresh) == (0.9, 0.8)


def test_the_built_in_model_carries_its_own_filters():
    from napari_sam2 import load_model
    from napari_sam2.checkpoints.shipped import shipped_metadata

    recorded = shipped_metadata()["segment_everything"]  # chosen on validation images when shipped
    filters = {k: recorded[k] for k in OFFICIAL_FILTERS}
    assert filters != OFFICIAL_FILTERS  # the official filters find no nuclei with this model
    assert default_filters(load_model(device="cpu")) == filters


def test_calibration_picks_the_filters_that_find_the_nuclei():
    from napari_sam2 import load_model
    from napari_sam2.training.real_eval import Sample, calibrate_filters

    image, labels = real_sample("nuclei_fluorescence")
    samples = [Sample("fluorescence", image[:128, :128], labels[:128, :128], "fluorescence")]
    chosen, table = calibrate_filters(load_model(device="cpu"), samples, (0.0, 0.999), (0.0,), log=lambda _: None, points_per_side=8)
    assert [row["pred_iou_thresh"] for row in table] == [0.0, 0.999]
    loose, strict = (row["per_modality"]["fluorescence"] for row in table)
    assert strict["n_found"] == 0 and loose["n_found"] > 0 and loose["f1"] > 0
    assert chosen == {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def test_shipped_real_samples_have_their_labels():
    for name in REAL_SAMPLES:
        image, labels = real_sample(name)
        assert image.dtype == np.uint8 and labels.shape == image.shape[:2]
        assert len(np.unique(labels)) - 1 >= 50
    with pytest.raises(KeyError, match="nuclei_fluorescence"):
        real_sample("cells")


def test_evaluate_command_writes_per_modality_json(tmp_path, capsys):
    from napari_sam2.cli import main

    data = tmp_path / "set"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    truth = disks([(20, 20), (20, 44), (46, 32)], 8)
    for name, image in (("a", np.where(truth > 0, 200, 20)), ("b", np.where(truth > 0, 40, 220))):
        tifffile.imwrite(data / "images" / f"{name}.tif", image.astype(np.uint8))
        tifffile.imwrite(data / "labels" / f"{name}.tif", truth)
    (data / "index.csv").write_text("id,modality\na,fluorescence\nb,brightfield\n")
    out = tmp_path / "report.json"
    main(["evaluate", "--data", str(data), "--objects", "2", "--zoom-objects", "0", "--json", str(out), "--device", "cpu"])
    report = json.loads(out.read_text())[f"data:{data}"]
    assert set(report) == {"brightfield", "fluorescence"}
    for entry in report.values():
        assert entry["images"] == 1 and entry["prompts"]["n_objects"] == 2
        assert entry["otsu_watershed"]["f1"] == 1.0  # the baseline segments three clean disks
        assert 0.0 <= entry["prompts"]["click"] <= 1.0
    assert "fluorescence" in capsys.readouterr().out


@pytest.fixture
def tiny_checkpoint_with_meta(tmp_path):
    from napari_sam2 import build_model

    def make(meta: dict) -> Path:
        model = build_model("sam2.1_hiera_tiny", image_size=256, device="cpu")
        path = tmp_path / "tiny.pt"
        torch.save({"model": model.state_dict()}, path)
        path.with_suffix(".json").write_text(json.dumps({"image_size": 256, **meta}))
        return path

    return make
