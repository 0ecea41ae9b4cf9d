import math

import numpy as np
import pytest

from pscl.metrics import confusion_matrix, scores


def test_confusion_ignores_255_and_counts_rows_as_truth():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_scores_on_hand_computed_matrix():
    cm = np.array([[50, 10, 0], [5, 35, 0], [0, 0, 0]])  # class 2: absent in truth and prediction
    s = scores(cm, ["a", "b", "c"])
    d0 = 2 * 50 / (2 * 50 + 5 + 10)
    d1 = 2 * 35 / (2 * 35 + 10 + 5)
    assert s["per_class"]["a"]["dice"] == pytest.approx(d0)
    assert s["per_class"]["b"]["dice"] == pytest.approx(d1)
    assert math.isnan(s["per_class"]["c"]["dice"])
    assert s["dice_fg"] == pytest.approx(d1)  # absent class 2 left out
    assert s["dice_all"] == pytest.approx((d0 + d1) / 2)
    assert s["miou"] == pytest.approx((50 / 65 + 35 / 50) / 2)
    assert s["acc"] == pytest.approx(85 / 100)


def test_class_predicted_but_absent_in_truth_scores_zero():
    cm = np.array([[8, 2], [0, 0]])
    s = scores(cm)
    assert s["per_class"]["1"]["dice"] == 0.0 and s["dice_fg"] == 0.0


def test_split_pooling_differs_from_per_image_mean():
    # pooled over the split, not averaged per image (the paper's Dice)
    t1, p1 = np.array([1, 1, 1, 1, 0, 0]), np.array([1, 1, 1, 1, 0, 0])
    t2, p2 = np.array([1, 0, 0, 0, 0, 0]), np.array([0, 1, 0, 0, 0, 0])
    pooled = scores(confusion_matrix(p1, t1, 2) + confusion_matrix(p2, t2, 2))["dice_fg"]
    assert pooled == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))


def test_out_of_range_prediction_raises():
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(np.array([3]), np.array([0]), 2)


def test_score_split_pools_the_split_and_scores_each_image(synth_data):
    from pscl.data import load_dataset
    from pscl.metrics import score_split

    ds = load_dataset(synth_data)
    masks = {stem: ds.load_pair(stem)[1] for stem in ds.stems("test")}
    truth = iter(masks.values())  # images come in the split's order
    perfect = score_split(ds, "test", lambda image: np.where((m := next(truth)) == 255, 0, m))
    assert perfect["dice_fg"] == 1.0 and perfect["acc"] == 1.0 and set(perfect["per_image_dice_fg"]) == set(masks)
    all_matrix = score_split(ds, "test", lambda image: np.zeros(image.shape, np.uint8))
    assert all_matrix["dice_fg"] == 0.0 and all_matrix["per_class"]["matrix"]["dice"] > 0


def test_miou_over_present_classes_ignores_false_alarms_of_absent_classes():
    from pscl.metrics import miou_over_present_classes

    # truth holds classes 0 and 1; 10 pixels of class 0 called class 2, which the image lacks
    cm = np.array([[40, 0, 10], [5, 45, 0], [0, 0, 0]])
    assert miou_over_present_classes(cm) == pytest.approx((40 / 55 + 45 / 50) / 2)
    assert scores(cm)["miou"] == pytest.approx((40 / 55 + 45 / 50 + 0.0) / 3)  # the pooled mean counts it
    assert math.isnan(miou_over_present_classes(np.zeros((2, 2))))


def test_score_split_reports_the_per_image_miou(synth_data):
    from pscl.data import load_dataset
    from pscl.metrics import score_split

    ds = load_dataset(synth_data)
    truth = iter([ds.load_pair(stem)[1] for stem in ds.stems("test")])
    perfect = score_split(ds, "test", lambda image: np.where((m := next(truth)) == 255, 0, m))
    assert perfect["miou_per_image"] == 1.0
    all_matrix = score_split(ds, "test", lambda image: np.zeros(image.shape, np.uint8))
    assert 0.0 < all_matrix["miou_per_image"] < 1.0
