import math

import numpy as np
import torch

from pscl.losses import class_weights, segmentation_loss, soft_dice_loss


def test_soft_dice_hand_computed_and_ignores_255():
    # two pixels, two classes; probabilities via logits log(p)
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7]])  # (pixel, class)
    logits = probs.log().T.reshape(1, 2, 1, 2)
    target = torch.tensor([[[1, 1]]])
    # class 1: p = (0.2, 0.7), g = (1, 1): 1 - (2*0.9 + 1) / (0.9 + 2 + 1)
    expected = 1 - (2 * 0.9 + 1) / (0.9 + 2 + 1)
    assert math.isclose(soft_dice_loss(logits, target, [1]).item(), expected, rel_tol=1e-5)
    ignored = torch.tensor([[[1, 255]]])
    expected = 1 - (2 * 0.2 + 1) / (0.2 + 1 + 1)
    assert math.isclose(soft_dice_loss(logits, ignored, [1]).item(), expected, rel_tol=1e-5)


def test_segmentation_loss_is_half_ce_half_dice():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    w = torch.tensor([0.5, 1.0, 2.0])
    ce = torch.nn.functional.cross_entropy(logits, target, weight=w)
    expected = 0.5 * ce + 0.5 * soft_dice_loss(logits, target, [1, 2])
    assert torch.allclose(segmentation_loss(logits, target, w), expected)
    all_ignored = torch.full((2, 4, 4), 255)
    assert torch.isfinite(segmentation_loss(logits, all_ignored, w))


def test_class_weights_inverse_sqrt_frequency_mean_one():
    mask = np.array([0] * 64 + [1] * 16 + [255] * 20, dtype=np.uint8)
    w = class_weights([mask], 3).numpy()
    assert w[2] == 1.0  # absent class
    assert np.isclose(w[1] / w[0], 2.0)  # (16/80)^-0.5 / (64/80)^-0.5
    assert np.isclose(w[:2].mean(), 1.0)


def test_class_weights_power_zero_is_unweighted_and_power_one_is_inverse_share():
    mask = np.array([0] * 64 + [1] * 16, dtype=np.uint8)
    assert class_weights([mask], 2, power=0).tolist() == [1.0, 1.0]
    w = class_weights([mask], 2, power=1).numpy()
    assert np.isclose(w[1] / w[0], 4.0)


def test_dice_weight_mixes_the_two_terms():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    ce = torch.nn.functional.cross_entropy(logits, target)
    dice = soft_dice_loss(logits, target, [1, 2])
    assert torch.isclose(segmentation_loss(logits, target, dice_weight=0), ce)
    assert torch.isclose(segmentation_loss(logits, target, dice_weight=1), dice)
    assert torch.isclose(segmentation_loss(logits, target), 0.5 * ce + 0.5 * dice)


def test_affinity_loss_matches_its_closed_forms():
    from pscl.losses import affinity_loss
    flat = torch.full((2, 1, 32, 32), 0.5)
    uniform = torch.zeros(2, 4, 32, 32)  # equal logits: p = 1/4 everywhere
    assert torch.isclose(affinity_loss(uniform, flat), torch.tensor(1 - 1 / 4), atol=1e-6)
    one_class = torch.zeros(2, 4, 32, 32)
    one_class[:, 2] = 50.0
    assert affinity_loss(one_class, flat) < 1e-6  # alike pixels, one label
    # two halves, labelled apart: costly on a flat image, nearly free where the image changes at the same place
    halves = torch.zeros(1, 2, 32, 32)
    halves[:, 0, :, :16], halves[:, 1, :, 16:] = 50.0, 50.0
    edge = torch.zeros(1, 1, 32, 32)
    edge[..., 16:] = 1.0
    on_flat, on_edge = affinity_loss(halves, flat[:1]), affinity_loss(halves, edge)
    assert on_flat > 0.05 and on_edge < 1e-6
    # by hand, radius 1 and no pooling on a 1 x 2 image: one pair, K = exp(-1/2 sigma_xy^2 - 0)
    pair = torch.tensor([[[[50.0, 0.0]], [[0.0, 50.0]]]])  # (1, 2, 1, 2): the two pixels of different classes
    assert torch.isclose(affinity_loss(pair, torch.zeros(1, 1, 1, 2), radius=1, stride=1), torch.tensor(1.0))


def test_affinity_loss_descends_to_labels_that_follow_the_image():
    from pscl.losses import affinity_loss
    torch.manual_seed(0)
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 8:] = 1.0
    logits = torch.randn(1, 2, 16, 16, requires_grad=True)
    start = affinity_loss(logits, edge).item()
    optimiser = torch.optim.SGD([logits], lr=50.0)
    for _ in range(100):
        optimiser.zero_grad()
        affinity_loss(logits, edge).backward()
        optimiser.step()
    assert torch.isfinite(logits.grad).all() and affinity_loss(logits, edge).item() < start / 4
