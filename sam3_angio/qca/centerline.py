"""The centreline of a vessel mask: skeleton (scikit-image), the skeleton as a graph, its main path (the
longest geodesic path, or from the end nearest an ostium hint), side branches counted, spurs ignored.

Input a padded crop ``(h, w)`` bool; output points ``(N, 2)`` as ``(x, y)`` = (column, row) crop pixels,
every ``step`` px of arc length, with unit tangents and normals, ordered from the chosen start end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph
from skimage.morphology import skeletonize

# A skeleton branch leaving the main path counts as a side branch when it reaches further than
# BRANCH_FACTOR x the lumen radius at its take-off plus BRANCH_MIN_PX; shorter ones are spurs from
# boundary noise (a spur of a binary disc-swept tube reaches about one radius).
BRANCH_FACTOR = 1.5
BRANCH_MIN_PX = 2.0


@dataclass
class Centerline:
    xy: np.ndarray  # (N, 2) x, y crop pixels, ordered from the start end
    s: np.ndarray  # (N,) arc length from the start, px
    tangent: np.ndarray  # (N, 2) unit
    normal: np.ndarray  # (N, 2) unit, tangent turned by +90 degrees
    step: float  # px between samples
    branch_s: List[float] = field(default_factory=list)  # arc length of each side branch take-off
    branch_radius: List[float] = field(default_factory=list)  # lumen radius (px) at each take-off
    n_spurs: int = 0  # short skeleton branches ignored
    skeleton_path: Optional[np.ndarray] = None  # (M, 2) x, y of the main skeleton path (pixel centres)

    @property
    def length(self) -> float:
        return float(self.s[-1]) if len(self.s) else 0.0

    def reversed(self) -> "Centerline":
        L = self.length
        return Centerline(
            xy=self.xy[::-1].copy(), s=self.s.copy(), tangent=-self.tangent[::-1], normal=-self.normal[::-1],
            step=self.step, branch_s=sorted(L - b for b in self.branch_s),
            branch_radius=[r for _, r in sorted(zip((L - b for b in self.branch_s), self.branch_radius))],
            n_spurs=self.n_spurs,
            skeleton_path=None if self.skeleton_path is None else self.skeleton_path[::-1].copy(),
        )


def skeleton_graph(skel: np.ndarray) -> Tuple[np.ndarray, sparse.csr_matrix]:
    """Skeleton pixels ``(K, 2)`` (row, col) and their 8-neighbour graph, edges weighted 1 or sqrt 2."""
    rc = np.argwhere(skel)
    index = np.full(skel.shape, -1, np.int64)
    index[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
    H, W = skel.shape
    src, dst, wts = [], [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each undirected edge once
        r2, c2 = rc[:, 0] + dr, rc[:, 1] + dc
        ok = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
        j = np.full(len(rc), -1, np.int64)
        j[ok] = index[r2[ok], c2[ok]]
        has = j >= 0
        src.append(np.nonzero(has)[0])
        dst.append(j[has])
        wts.append(np.full(int(has.sum()), np.hypot(dr, dc)))
    src, dst, wts = np.concatenate(src), np.concatenate(dst), np.concatenate(wts)
    g = sparse.coo_matrix((wts, (src, dst)), shape=(len(rc), len(rc))).tocsr()
    return rc, (g + g.T).tocsr()


def _leaves(rc: np.ndarray, graph: sparse.csr_matrix) -> np.ndarray:
    """Skeleton end points: one neighbour, or two neighbours that touch each other (a staircase tip)."""
    deg = np.diff(graph.indptr)
    leaves = list(np.nonzero(deg <= 1)[0])
    for i in np.nonzero(deg == 2)[0]:
        a, b = graph.indices[graph.indptr[i]:graph.indptr[i + 1]]
        if np.max(np.abs(rc[a] - rc[b])) <= 1:
            leaves.append(i)
    return np.array(sorted(leaves), np.int64)


def _path(pred: np.ndarray, start: int, end: int) -> List[int]:
    out = [end]
    while out[-1] != start:
        p = pred[out[-1]]
        if p < 0:
            break
        out.append(int(p))
    return out[::-1]


def main_path(rc: np.ndarray, graph: sparse.csr_matrix, ostium_rc: Optional[Tuple[float, float]] = None) -> List[int]:
    """Node indices of the main path, from its start.

    With a hint: from the skeleton end nearest the hint to the node geodesically farthest from it.
    Without: the longest geodesic path (two Dijkstra sweeps: farthest from any node, then farthest
    from that), exact on a tree.
    """
    n = len(rc)
    if n == 1:
        return [0]
    comp = csgraph.connected_components(graph, directed=False)[1]
    big = np.bincount(comp).argmax()  # skeletonize keeps the topology; guard against stray pixels anyway
    nodes = np.nonzero(comp == big)[0]
    if ostium_rc is not None:
        leaves = np.intersect1d(_leaves(rc, graph), nodes)
        cand = leaves if len(leaves) else nodes
        d2 = np.sum((rc[cand] - np.asarray(ostium_rc, float)) ** 2, axis=1)
        a = int(cand[np.argmin(d2)])
    else:
        d0 = csgraph.dijkstra(graph, indices=int(nodes[0]), directed=False)
        a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    da, pred = csgraph.dijkstra(graph, indices=a, directed=False, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1)))
    return _path(pred, a, b)


def side_branches(rc: np.ndarray, graph: sparse.csr_matrix, path: List[int],
                  edt: np.ndarray) -> Tuple[List[int], List[float], int]:
    """Skeleton parts off the main path: ``(take-off nodes, lumen radii there (px), number of spurs)``."""
    on = np.zeros(len(rc), bool)
    on[path] = True
    if on.all():
        return [], [], 0
    dist, _, sources = csgraph.dijkstra(graph, indices=path, directed=False, min_only=True,
                                        return_predecessors=True)
    off = np.nonzero(~on)[0]
    sub = graph[off][:, off]
    n_comp, comp = csgraph.connected_components(sub, directed=False)
    b_n, b_r, spurs = [], [], 0
    for k in range(n_comp):
        members = off[comp == k]
        finite = members[np.isfinite(dist[members])]
        if len(finite) == 0:
            continue
        reach = float(dist[finite].max())
        src = int(sources[finite[np.argmin(dist[finite])]])
        r = float(edt[rc[src, 0], rc[src, 1]])
        if reach > BRANCH_FACTOR * r + BRANCH_MIN_PX:
            b_n.append(src)
            b_r.append(r)
        else:
            spurs += 1
    return b_n, b_r, spurs


def _resample(xy: np.ndarray, step: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return xy[:1].copy()
    t = np.arange(0.0, s[-1] + 1e-9, step)
    if len(t) < 2:
        t = np.array([0.0, s[-1]])
    return np.stack([np.interp(t, s, xy[:, 0]), np.interp(t, s, xy[:, 1])], axis=1)


def _inside(field_: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(field_, [xy[:, 1], xy[:, 0]], order=1, mode="constant", cval=0.0)


def _extend(xy: np.ndarray, mask_f: np.ndarray, reach: float, step: float) -> np.ndarray:
    """Continue the end ``xy[-1]`` straight along its last direction up to the mask boundary."""
    k = min(len(xy) - 1, max(2, int(round(4.0 / step))))
    d = xy[-1] - xy[-1 - k]
    nd = np.linalg.norm(d)
    if nd < 1e-9:
        return xy
    d /= nd
    t = np.arange(step, reach + step, step)
    ext = xy[-1] + t[:, None] * d
    inside = _inside(mask_f, ext) >= 0.5
    n_in = int(np.argmin(inside)) if not inside.all() else len(inside)
    return np.vstack([xy, ext[:n_in]]) if n_in else xy


def extract_centerline(crop: np.ndarray, step: float = 0.5, ostium_xy: Optional[Tuple[float, float]] = None,
                       edt: Optional[np.ndarray] = None) -> Centerline:
    """Centreline of the (single-component, padded) mask ``crop (h, w)``; ``ostium_xy`` in crop pixels."""
    if edt is None:
        edt = ndimage.distance_transform_edt(crop)
    skel = skeletonize(crop)
    if not skel.any():  # a blob too small to thin: its deepest pixel
        skel = np.zeros_like(crop)
        skel[np.unravel_index(int(np.argmax(edt)), edt.shape)] = True
    rc, graph = skeleton_graph(skel)
    ostium_rc = None if ostium_xy is None else (float(ostium_xy[1]), float(ostium_xy[0]))
    path = main_path(rc, graph, ostium_rc)
    pix = rc[path][:, ::-1].astype(np.float64)  # (M, 2) x, y
    path_s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pix, axis=0), axis=1))])
    b_nodes, b_r, spurs = side_branches(rc, graph, path, edt)

    r_path = edt[rc[path, 0], rc[path, 1]]
    r_med = float(np.median(r_path))
    L = float(path_s[-1])
    mask_f = crop.astype(np.float64)
    if L < 1.0:  # a dot: a centreline two samples long across its deepest point
        c = pix[0]
        xy = np.stack([c - (0.5 * step, 0.0), c + (0.5 * step, 0.0)])
    else:
        # The skeleton's last radius or so is unreliable (it forks towards the corners of a cut end):
        # trim it, smooth, then continue each end straight out to the mask boundary.
        xy = _resample(pix, step)
        ends_r = [float(r_path[path_s <= min(L, 3 * r_med + 2)].max()),
                  float(r_path[path_s >= max(0.0, L - 3 * r_med - 2)].max())]
        trim = [min(r, 0.25 * L) for r in ends_r]
        n0, n1 = int(round(trim[0] / step)), int(round(trim[1] / step))
        if len(xy) - n0 - n1 >= 3:
            xy = xy[n0: len(xy) - n1]
        sigma = float(np.clip(0.5 * r_med, 1.0, 3.0)) / step
        if len(xy) > 3:
            xy = np.stack([ndimage.gaussian_filter1d(xy[:, k], sigma, mode="nearest") for k in range(2)], axis=1)
            xy = _resample(xy, step)
        reach = [2.0 * r + 3.0 for r in ends_r]
        xy = _extend(xy, mask_f, reach[1], step)
        xy = _extend(xy[::-1], mask_f, reach[0], step)[::-1]
    xy = _resample(xy, step)
    s = np.arange(len(xy)) * step
    b_s: List[float] = []
    for node in b_nodes:  # take-off -> nearest centreline sample
        d2 = np.sum((xy - rc[node, ::-1]) ** 2, axis=1)
        b_s.append(float(s[int(np.argmin(d2))]))
    order = np.argsort(b_s)
    b_s, b_r = [b_s[i] for i in order], [b_r[i] for i in order]
    if len(xy) > 1:
        tan = np.gradient(xy, axis=0)
        tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    else:
        tan = np.array([[1.0, 0.0]])
    normal = np.stack([-tan[:, 1], tan[:, 0]], axis=1)
    return Centerline(xy=xy, s=s, tangent=tan, normal=normal, step=step, branch_s=b_s, branch_radius=b_r,
                      n_spurs=spurs, skeleton_path=pix)
