"""PSCL patch sampling: templates by coverage, vectorised greedy matching == the sequential rule."""
import pytest
import torch

from pscl.data.views import cell_coverage
from pscl.sampling import match_greedy, match_greedy_reference, match_random, select_templates


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
