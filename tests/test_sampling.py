"""PSCL patch sampling: templates by coverage, vectorised greedy matching == the sequential rule."""
import pytest
import torch

from pscl.data.views import cell_coverage
from pscl.methods.sampling import decline_matches, match_greedy, match_greedy_reference, match_random, select_templates


def test_templates_pick_the_right_class_per_block():
    # 4x4 label map at cell resolution: class 0 left half, class 1 top-right, class 2 bottom-right
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2, 2:] = 1
    labels[0, 2:, 2:] = 2
    cov = cell_coverage(labels, 3, 4)[0].flatten(1)  # (C, N)
    cells, classes, weights = select_templates(cov, per_class=3, generator=torch.Generator().manual_seed(0))
    assert classes.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    flat = labels.flatten()
    assert flat[cells].tolist() == classes.tolist()  # every template lies in its class
    assert len(set(cells.tolist())) == 9 and torch.all(weights == 1)


def test_class_absent_from_the_annotated_image_gets_low_weight_fill():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :, 2:] = 1  # class 2 absent
    cov = cell_coverage(labels, 3, 4)[0].flatten(1)
    cells, classes, weights = select_templates(cov, per_class=2)
    assert classes.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(set(cells.tolist())) == 6  # the absent class's block filled with unused cells
    assert torch.all(weights[:4] == 1) and torch.all(weights[4:] == 0)


def test_too_many_templates_for_the_grid_raise():
    with pytest.raises(ValueError, match="exceed"):
        select_templates(torch.rand(5, 16), per_class=4)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_matching_equals_the_sequential_greedy_rule(seed):
    g = torch.Generator().manual_seed(seed)
    b, t, n = 5, [6, 12, 20, 40, 8, 30][seed], [16, 40, 64, 50, 8, 30][seed]
    # clustered templates make conflicts common: the hard case for a parallel rule
    centres = torch.randn(3, 8, generator=g)
    templates = centres[torch.arange(t) % 3] + 0.3 * torch.randn(t, 8, generator=g)
    cells = torch.randn(b, n, 8, generator=g)
    sim = torch.einsum("td,bnd->btn", templates, cells)
    got = match_greedy(sim)
    assert torch.equal(got, match_greedy_reference(sim))
    assert all(len(set(row.tolist())) == t for row in got)  # one-to-one
    # short candidate lists: templates exhaust them and search their whole row
    for depth in (1, 3):
        assert torch.equal(match_greedy(sim, depth=depth), got)


def test_matching_when_every_template_wants_the_same_cells():
    g = torch.Generator().manual_seed(0)
    sim = torch.rand(2, 1, 30, generator=g) * 10 + torch.rand(2, 25, 30, generator=g) * 0.01
    assert torch.equal(match_greedy(sim, depth=4), match_greedy_reference(sim))


def test_matching_raises_when_cells_run_out_and_random_is_one_to_one():
    with pytest.raises(ValueError, match="one-to-one"):
        match_greedy(torch.rand(1, 5, 4))
    r = match_random(3, 7, 9, generator=torch.Generator().manual_seed(0))
    assert r.shape == (3, 7) and all(len(set(row.tolist())) == 7 for row in r)


def test_pure_templates_are_fewer_for_a_thin_class_and_never_of_another_class():
    # 4x4 cells of 4x4 pixels: class 1 fills the right half; class 2 one whole cell and half of another
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[0, :, 8:] = 1
    labels[0, 0:4, 0:4] = 2
    labels[0, 4:8, 0:2] = 2
    cov = cell_coverage(labels, 3, 4)[0].flatten(1)
    cells, classes, weights = select_templates(cov, per_class=3, purity=0.75)
    assert classes.tolist() == [0, 0, 0, 1, 1, 1, 2]  # one pure cell of class 2: one template
    assert torch.all(cov[classes, cells] >= 0.75) and torch.all(weights >= 0.75)
    cells, classes, _ = select_templates(cov, per_class=3, purity=0.0)  # the paper's rule fills the block
    assert classes.tolist().count(2) == 3 and cov[2, cells[classes == 2]].min() < 0.75
    empty = select_templates(torch.zeros(3, 16), per_class=2, purity=0.5)
    assert all(len(t) == 0 for t in empty)


def test_matching_declines_cells_of_a_class_the_crop_lacks():
    g = torch.Generator().manual_seed(0)
    axes = torch.eye(8)[:3]  # class directions
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    templates = torch.nn.functional.normalize(axes[classes] + 0.05 * torch.randn(6, 8, generator=g), dim=1)
    truth = torch.tensor([0] * 10 + [1] * 10)  # the crop holds classes 0 and 1 only
    cells = torch.nn.functional.normalize(axes[truth] + 0.05 * torch.randn(20, 8, generator=g), dim=1)
    sim = torch.einsum("td,nd->tn", templates, cells)[None]  # (1, T, N)
    assigned = match_greedy(sim)
    keep = decline_matches(sim, assigned, classes, margin=0.05)[0]
    assert not keep[classes == 2].any()  # forced matches of the absent class are declined
    assert keep[classes != 2].all() and torch.equal(truth[assigned[0][keep]], classes[keep])
    assert decline_matches(sim, assigned, classes, margin=-10).all()  # no margin: the paper's rule


def test_covering_crops_show_a_rare_class_that_uniform_crops_miss():
    import numpy as np
    from pscl.data.crops import GuidedBatches, pure_cells
    mask = np.zeros((256, 256), np.uint8)
    mask[:, 128:] = 1
    mask[200:224, 100:124] = 2  # a 24 px precipitate near the phase boundary: under 1 % of the image
    image = np.zeros((256, 256), np.float32)
    unlabelled = [np.zeros((64, 64), np.float32)]
    cover = dict(num_classes=3, candidates=16, min_cells=2, purity=0.75)
    shown = {}
    for name, c in (("uniform", None), ("cover", cover)):
        data = GuidedBatches([image], [mask], unlabelled, 64, 2, 40, seed=0, cover=c)
        counts = [pure_cells(data[i]["mask"][0].numpy(), 3, 4, 0.75) for i in range(40)]
        shown[name] = np.mean([n[2] >= 2 for n in counts]), np.mean([(n >= 2).sum() for n in counts])
    assert shown["uniform"][0] < 0.35 and shown["cover"][0] > 0.9, shown  # measured: 0.18 and 1.0
    assert shown["cover"][1] > shown["uniform"][1] + 0.8  # classes shown per crop: 1.5 -> 3.0


def test_cell_gathers_agree_in_both_layouts_forward_and_backward():
    """map_cells / flat_cells give flatten(2)'s cells in NCHW and channels_last, and a channels_last
    map gets a channels_last gradient (an NCHW one slows the decoder's backward several times)."""
    from pscl.methods.pscl import cells_of, flat_cells, map_cells
    torch.manual_seed(0)
    base = torch.randn(3, 5, 6, 7)
    cells = torch.randint(0, 42, (3, 9))
    weights = torch.randn(3, 5, 9)
    results = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        x = base.clone().contiguous(memory_format=layout).requires_grad_()
        assert torch.equal(flat_cells(x), base.flatten(2))
        picked = map_cells(x, cells)
        (picked * weights).sum().backward()
        results[layout] = (picked.detach(), x.grad)
        assert x.grad.is_contiguous(memory_format=layout)
    reference = cells_of(base.flatten(2), cells)
    for picked, grad in results.values():
        assert torch.equal(picked, reference)
        torch.testing.assert_close(grad, results[torch.contiguous_format][1])
    assert results[torch.channels_last][1].abs().sum() > 0
