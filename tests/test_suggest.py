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
