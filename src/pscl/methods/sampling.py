"""PSCL's patch sampling: class templates from the annotated image, greedy one-to-one matching.

At each scale, with K = top_k * 2^s cells per class (``docs/method.md``):

1. :func:`select_templates`: on the annotated image, for each class in turn the K cells of highest
   coverage of that class (ties broken by small noise), never reusing a cell. With ``purity`` > 0
   only cells whose coverage of the class reaches it qualify: a class with fewer pure cells gets
   fewer templates (so less weight in the loss), never cells of other classes. With ``purity=0``
   (the paper's rule) a class with too few cells fills its block with the best remaining cells.
2. :func:`match_greedy`: each unlabelled image's cells are matched to the templates by
   embedding similarity, greedily and one-to-one in template order (template r takes its most
   similar free cell); the cell inherits template r's class.
3. :func:`decline_matches`: a matched cell keeps its class only when it is clearly closer to that
   class's templates than to any other class's (a margin on the best similarities), so a crop
   that lacks a class gives none of it. The paper's rule accepts every match.

:func:`match_greedy` is vectorised over images and gives the result of the sequential rule
(:func:`match_greedy_reference`) on tie-free inputs. It works in rounds; in each round every
pending template proposes its most similar free cell, and template r's proposal is final when no
earlier pending template could still take that cell. With m earlier templates still pending,
template q's cell is among its m + 1 most similar free cells ("its reach"); a free cell outside
the reach of every earlier pending template can only go to r (a template whose reach lies beyond
its listed cells counts as reaching everything, which only delays others). The first pending
template always qualifies, so each round settles at least one template per image; in practice a
few rounds settle all of them (12 for 360 templates over 16384 cells).
"""
from __future__ import annotations

import torch


def select_templates(coverage: torch.Tensor, per_class: int, generator: torch.Generator | None = None,
                     noise: float = 1e-6, purity: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cells of the annotated image for each class block.

    coverage: (C, N) class coverage of each of N cells (fractions in 0..1). ``purity`` > 0: only
    cells covering their class at least that much, up to ``per_class`` of them (blocks may be
    shorter or empty); 0: exactly ``per_class`` per class, filled with the best remaining cells.
    Returns (cells (T,), classes (T,), weights (T,) = the cell's coverage of its block's class);
    blocks in class order.
    """
    c, n = coverage.shape
    if c * per_class > n:
        raise ValueError(f"{c} classes x {per_class} cells per class exceed the {n} cells of the grid; "
                         "lower top_k or use larger crops")
    if not 0 <= purity <= 1:
        raise ValueError(f"template purity must lie in [0, 1], got {purity}")
    jitter = torch.rand(coverage.shape, generator=generator, device=coverage.device) * noise
    scores = coverage + jitter.to(coverage.device)
    free = torch.ones(n, dtype=torch.bool, device=coverage.device)
    cells, classes = [], []
    for k in range(c):  # a loop over classes, not over cells
        top = scores[k].masked_fill(~free, float("-inf")).topk(per_class)
        pick = top.indices[coverage[k, top.indices] >= purity] if purity > 0 else top.indices
        free[pick] = False
        cells.append(pick)
        classes.append(torch.full((len(pick),), k, dtype=torch.long, device=coverage.device))
    cells, classes = torch.cat(cells), torch.cat(classes)
    return cells, classes, coverage[classes, cells]


def decline_matches(similarity: torch.Tensor, assigned: torch.Tensor, classes: torch.Tensor,
                    margin: float) -> torch.Tensor:
    """Which matches keep their class: (B, T) bool.

    similarity: (B, T, N) template-to-cell similarities; assigned: (B, T) the matched cells;
    classes: (T,) the templates' classes. A cell matched to a template of class c is kept when its
    best similarity to c's templates exceeds its best similarity to every other class's templates
    by at least ``margin``. With one class present every match is kept.
    """
    b, t, _ = similarity.shape
    if t == 0:
        return torch.zeros(b, 0, dtype=torch.bool, device=similarity.device)
    at = similarity.gather(2, assigned[:, None, :].expand(b, t, t))  # [b, r, j]: template r vs cell of j
    present = classes.unique()
    per_class = torch.stack([at[:, classes == k].amax(1) for k in present], 1)  # (B, C', T): best per class
    mine = classes[None, :] == present[:, None]  # (C', T)
    own = per_class.masked_fill(~mine[None], float("-inf")).amax(1)
    rival = per_class.masked_fill(mine[None], float("-inf")).amax(1)  # -inf when one class only
    return own - rival >= margin


def match_greedy_reference(similarity: torch.Tensor) -> torch.Tensor:
    """The sequential rule, one image at a time: (B, T, N) similarities -> (B, T) cell indices."""
    b, t, n = similarity.shape
    out = torch.empty(b, t, dtype=torch.long)
    for i in range(b):
        free = torch.ones(n, dtype=torch.bool)
        for r in range(t):
            cell = int(similarity[i, r].masked_fill(~free, float("-inf")).argmax())
            out[i, r] = cell
            free[cell] = False
    return out


def match_greedy(similarity: torch.Tensor, depth: int = 32) -> torch.Tensor:
    """Vectorised greedy one-to-one matching (see module doc): (B, T, N) -> (B, T) cell indices.

    ``depth``: how many most similar cells per template are listed up front (a top-k over N is
    the costly step on CPU); a template whose listed cells are all taken searches its whole row.
    """
    b, t, n = similarity.shape
    if t > n:
        raise ValueError(f"{t} templates cannot be matched one-to-one to {n} cells")
    dev = similarity.device
    top = similarity.topk(min(t, depth), dim=2)  # each template's most similar cells, best first
    cand, k = top.indices, top.indices.shape[2]
    taken = torch.zeros(b, n + 1, dtype=torch.bool, device=dev)  # column n: a sink for non-accepted rows
    pending = torch.ones(b, t, dtype=torch.bool, device=dev)
    out = torch.zeros(b, t, dtype=torch.long, device=dev)
    earlier = torch.ones(t, t, dtype=torch.bool, device=dev).triu(1)  # [q, r]: q < r
    while pending.any():
        free = ~taken.gather(1, cand.reshape(b, -1)).reshape(b, t, k)
        prop = cand.gather(2, free.int().argmax(2, keepdim=True)).squeeze(2)  # (B, T)
        deep = pending & ~free.any(2)  # every listed cell is taken: search the whole row
        if deep.any():
            bi, qi = deep.nonzero(as_tuple=True)
            prop[bi, qi] = similarity[bi, qi].masked_fill(taken[bi, :n], float("-inf")).argmax(1)
        # reach: q's cell is among its m + 1 best free cells, m = earlier pending templates
        m = pending.long().cumsum(1) - pending.long()
        hit = free & (free.long().cumsum(2) == (m + 1)[..., None])
        reach = torch.where(hit.any(2), top.values.gather(2, hit.int().argmax(2, keepdim=True)).squeeze(2),
                            float("-inf"))
        sim_q_at_r = similarity.gather(2, prop[:, None, :].expand(b, t, t))  # [b, q, r]
        reachable = sim_q_at_r >= reach[:, :, None]
        blocked = (reachable & pending[:, :, None] & earlier[None]).any(1)
        accept = pending & ~blocked
        out = torch.where(accept, prop, out)
        taken.scatter_(1, torch.where(accept, prop, n), True)
        pending &= ~accept
    return out


def match_random(batch: int, templates: int, cells: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The ablation: ``templates`` distinct random cells per image, (B, T)."""
    noise = torch.rand(batch, cells, generator=generator, device=device)
    return noise.topk(templates, dim=1).indices
