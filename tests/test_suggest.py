"""`pscl suggest`: the image holding every class is the one to annotate."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pscl.files import write_png
from pscl.data.synth import synth_micrograph
from pscl.studies.suggest import SuggestConfig, greedy_set, suggest, support


def test_greedy_set_is_joint_not_top_k():
    # images 0 and 1 are near-duplicates covering references 0-2; image 2 alone covers 3-5
    sim = np.array([[1.0, 1.0, 1.0, 0.1, 0.1, 0.1],
                    [1.0, 1.0, 0.99, 0.1, 0.1, 0.1],
                    [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]])
    chosen, values = greedy_set(sim, 2)
    assert chosen == [0, 2]  # top-2 by single score would be [0, 1]
    assert values[1] == pytest.approx(np.mean([1, 1, 1, 0.9, 0.9, 0.9]))


def _one_all_class_folder(root, seed):
    """A plain folder: 'm_mixed' holds all three classes; the others one class each (the
    precipitate images need a matrix around the precipitates)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, classes in [(f"a_only{c}_{i}", (c,)) for c in (0, 1, 2) for i in range(2)] + [("m_mixed", (0, 1, 2))]:
        image, _ = synth_micrograph(rng, 160, classes)
        write_png(root / f"{name}.png", image)
    return root


@pytest.mark.parametrize("seed", [5, 7])  # 7: the lamellae of 'm_mixed' lie at one angle only
def test_all_class_image_ranked_first(tmp_path, seed):
    folder = _one_all_class_folder(tmp_path / "imgs", seed)
    config = SuggestConfig(k=2, patch=16, clusters=6, pretrain_profile="smoke", seed=seed)
    result = suggest(folder, tmp_path / "out", config)
    assert result["ranking"][0]["image"] == "m_mixed"
    assert result["ranking"][0]["score"] > result["ranking"][1]["score"]
    assert result["chosen"][0] == "m_mixed" and len(result["chosen"]) == 2
    saved = json.loads((tmp_path / "out" / "suggestions.json").read_text())
    assert saved["config"]["init"].endswith("pretrain")  # pretrained on the fly, and recorded
    assert (tmp_path / "out" / "contact_sheet.png").stat().st_size > 0
    rows = (tmp_path / "out" / "suggestions.csv").read_text().splitlines()
    assert rows[0] == "rank,image,score,clusters_present,reason" and len(rows) == 1 + 7
    # a rerun reuses the pretrained features and gives the same ranking
    again = suggest(folder, tmp_path / "out", SuggestConfig(k=2, patch=16, clusters=6, pretrain_profile="smoke",
                                                           seed=seed))
    assert [r["image"] for r in again["ranking"]] == [r["image"] for r in result["ranking"]]


def test_embeddings_do_not_depend_on_orientation():
    from pscl.nn import UNet
    from pscl.studies.suggest import patch_embeddings

    image = np.random.default_rng(0).random((64, 96), dtype=np.float32)
    model = UNet(2, (8, 16, 32, 64))
    e = patch_embeddings(model, image, 16, rotations=4).reshape(4, 6, -1)
    turned = patch_embeddings(model, np.rot90(image).copy(), 16, rotations=4).reshape(6, 4, -1)
    assert np.allclose(np.rot90(e, 1), turned, atol=1e-5)


def test_bad_settings():
    with pytest.raises(ValueError, match="multiple of 8"):
        SuggestConfig(patch=20)
    with pytest.raises(ValueError, match="rotations"):
        SuggestConfig(rotations=3)
    with pytest.raises(ValueError, match="k must"):
        SuggestConfig(k=0)


def test_examples_prefer_the_image_showing_a_texture_in_many_patches():
    centroids = np.eye(2)
    once = np.array([[1.0, 0.0]] * 9 + [[0.0, 1.0]])  # texture 1 in one patch
    often = np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5)
    assert support(centroids, once, 3).tolist() == [[1, 1, 1], [1, 0, 0]]
    tops = np.stack([support(centroids, e, 3) for e in (once, often)])
    assert greedy_set(tops[..., :1], 1)[1] == greedy_set(tops[..., :1][:, :, 0], 1)[1] == [1.0]  # a tie with one example
    chosen, values = greedy_set(tops, 2)
    assert chosen[0] == 1 and values[0] == pytest.approx(1.0)
    assert support(centroids, once[-2:], 3)[0].tolist() == [1, 0, -1]  # fewer patches than examples: padded


def test_greedy_set_with_examples_counts_the_union_of_the_set():
    # each image shows texture 0 in one patch; together they show it in two
    tops = np.array([[[1.0, 0.0]], [[1.0, 0.0]], [[0.5, 0.5]]])
    chosen, values = greedy_set(tops, 2)
    assert chosen == [0, 1]  # a tie at 0.5 first; then image 1 lifts the union to (1 + 1) / 2, image 2 only to 0.75
    assert values == pytest.approx([0.5, 1.0])


def test_the_most_unsure_window_is_found_where_the_unsureness_is():
    from pscl.studies.unsure import most_unsure_window
    unsure = np.zeros((300, 500), np.uint8)
    unsure[192:, 320:448] = 255  # 108 rows x 128 columns at the bottom edge
    x, y, mean = most_unsure_window(unsure, 128)
    assert (x, y) == (320, 172) and mean == pytest.approx(108 / 128)  # the last window row, flush with the edge
    small = np.full((40, 60), 51, np.uint8)  # smaller than the window: the whole image
    assert most_unsure_window(small, 128) == (0, 0, 0.2)


def test_pscl_suggest_run_ranks_the_unannotated_micrographs_by_unsureness(synth_data, tiny_run, tmp_path):
    import csv

    from PIL import Image
    from typer.testing import CliRunner

    from pscl.cli import app
    from pscl.data.folders import load_dataset
    out = tmp_path / "next"
    result = CliRunner().invoke(app, ["suggest", str(synth_data), "--out", str(out), "--run", str(tiny_run)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "stroke_next.csv").open()))
    expected = {p.stem for p in load_dataset(synth_data).unlabeled_paths()}
    assert {r["image"] for r in rows} == expected and len(rows) > 1
    means = [float(r["mean_unsure"]) for r in rows]
    assert means == sorted(means, reverse=True) and 0 < means[0] <= 1
    for r in rows:
        unsure = np.asarray(Image.open(out / f"{r['image']}_unsure.png"))
        assert abs(unsure.mean() / 255 - float(r["mean_unsure"])) < 1e-3
        assert 0 <= int(r["x"]) < unsure.shape[1] and 0 <= int(r["y"]) < unsure.shape[0]
    both = CliRunner().invoke(app, ["suggest", str(synth_data), "--out", str(out), "--run", str(tiny_run),
                                    "--init", str(tiny_run)])
    assert both.exit_code != 0 and "give one" in both.output
