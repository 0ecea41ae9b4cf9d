"""Contrastive losses against hand-computed values and straightforward loop references."""
import math

import pytest
import torch

from pscl.losses import byol_loss, dense_correspondence, info_nce, nt_xent


def nt_xent_reference(z1, z2, tau, labels=None):
    """Loop form of the docstring's formula."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n2 = z.shape[0]
    n = n2 // 2
    lab = None if labels is None else torch.cat([labels, labels])
    total = 0.0
    for i in range(n2):
        p = (i + n) % n2
        denom = 0.0
        for j in range(n2):
            if j == i:
                continue
            if lab is not None and j != p and lab[j] == lab[i]:
                continue
            denom += math.exp(float(z[i] @ z[j]) / tau)
        total += -math.log(math.exp(float(z[i] @ z[p]) / tau) / denom)
    return total / n2


def test_nt_xent_hand_computed_two_pairs():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # anchor 0: positive sim 1, negatives: z1[1] (0), z2[1] (0) -> -log(e^2 / (e^2 + 1 + 1)), tau 0.5
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_matches_loop_reference_with_and_without_class_mask():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(nt_xent_reference(z1, z2, 0.5), rel=1e-5)
    assert nt_xent(z1, z2, 0.3, labels).item() == pytest.approx(nt_xent_reference(z1, z2, 0.3, labels), rel=1e-5)
    # rows: the mean over a subset of anchors; two halves average to the whole
    halves = [nt_xent(z1, z2, 0.5, rows=slice(0, 3)), nt_xent(z1, z2, 0.5, rows=slice(3, 6))]
    assert ((halves[0] + halves[1]) / 2).item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)


def test_info_nce_hand_computed():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.0, 2.0]])  # normalised to (0, 1): positive sim 0
    queue = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # sims 1 and -1
    expected = -math.log(1 / (1 + math.exp(1 / 0.2) + math.exp(-1 / 0.2)))
    assert info_nce(q, k, queue, 0.2).item() == pytest.approx(expected, rel=1e-6)


def test_byol_loss_hand_computed():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.0, 3.0], [2.0, 2.0]])  # cos 0 and 1
    assert byol_loss(p, z).item() == pytest.approx((2.0 + 0.0) / 2)


def test_dense_correspondence_picks_most_similar_cell():
    f1 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (B=1, C=2, N=2): cells (1,0), (0,1)
    f2 = torch.tensor([[[0.0, 1.0, 0.7], [1.0, 0.0, 0.7]]])  # cells (0,1), (1,0), diagonal
    assert dense_correspondence(f1, f2).tolist() == [[1, 0]]


def test_nt_xent_with_keep_equals_the_kept_pairs_alone():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    keep = torch.tensor([True, False, True, True, False, True])
    assert nt_xent(z1, z2, 0.5, labels, keep=keep).item() == pytest.approx(
        nt_xent(z1[keep], z2[keep], 0.5, labels[keep]).item(), rel=1e-6)
    none = nt_xent(z1.requires_grad_(), z2, 0.5, labels, keep=torch.zeros(6, dtype=torch.bool))
    assert none.item() == 0 and none.requires_grad
