"""numba kernels of KNN matting's local neighbour pass (compiled on first use, cached on disk).

pymatting's ``knn_laplacian`` finds every pixel's k nearest pixels in a feature space of colour
plus scaled position with a k-d tree. In the local pass (position weight 2) one pixel step adds
``2 / (max(H, W) - 1)`` to the distance, so the neighbours lie close by on the image grid: a search
over square rings around the pixel, stopped at the first ring that cannot hold anything nearer
than the current k-th neighbour, is exact and needs neither a tree nor its build (1.6-1.8x faster
than pymatting's tree on the bundled 320 px val images, 1.05-1.15x at 800 px, measured; the rings
grow with the image, so ``laplacians.knn_search`` keeps the tree beyond 1024 px). The nearly
colour-only pass (position weight 0.1) always uses pymatting's tree: rings would have to go far.

Imported only when KNN matting runs, never at ``import ppmatting``.
"""
import numba
import numpy as np


@numba.njit(inline="always")
def _squared_distance(points, p, j):
    distance = np.float32(0.0)
    for d in range(points.shape[1]):
        diff = points[p, d] - points[j, d]
        distance += diff * diff
    return distance


@numba.njit(inline="always")
def _insert(best_d, best_i, distance, index):
    """Insert (distance, index) into the ascending k-best lists, dropping the last entry."""
    k = best_d.size
    t = k - 1
    while t > 0 and best_d[t - 1] > distance:
        best_d[t] = best_d[t - 1]
        best_i[t] = best_i[t - 1]
        t -= 1
    best_d[t] = distance
    best_i[t] = index


@numba.njit(cache=True, parallel=True)
def query_rings(points, queries, k, width, pixel_step):
    """The k nearest pixels of each query pixel, searched ring by ring around it on the image
    grid. Exact when the features hold the position scaled so that one pixel step adds at least
    ``pixel_step`` to the distance (ring r is at least ``r * pixel_step`` away): the search stops
    at the first ring that cannot hold anything closer than the current k-th neighbour."""
    n = points.shape[0]
    height = n // width
    out = np.empty((queries.size, k), np.int64)
    max_ring = max(height, width)
    for qi in numba.prange(queries.size):
        p = queries[qi]
        py, px = p // width, p % width
        best_d = np.full(k, np.inf, np.float32)
        best_i = np.full(k, -1, np.int64)
        for ring in range(max_ring):
            reach = np.float32(ring * pixel_step)
            if reach * reach > best_d[k - 1]:
                break
            y0, y1 = py - ring, py + ring
            for y in range(max(y0, 0), min(y1, height - 1) + 1):
                # the ring's top and bottom rows in full, its sides at two columns
                step = 1 if (y == y0 or y == y1) else 2 * ring
                for x in range(px - ring, px + ring + 1, step):
                    if 0 <= x < width:
                        j = y * width + x
                        distance = _squared_distance(points, p, j)
                        if distance < best_d[k - 1]:
                            _insert(best_d, best_i, distance, j)
        out[qi] = best_i
    return out


@numba.njit(cache=True, parallel=True)
def kth_window_distance(points, width, k, radius):
    """For every pixel, the k-th smallest feature distance (not squared) to the pixels of its
    own (2 radius + 1)^2 window, itself at 0 included (inf when the window holds fewer than k
    pixels): an upper bound of its k-th nearest-neighbour distance."""
    n = points.shape[0]
    height = n // width
    out = np.empty(n, np.float32)
    for p in numba.prange(n):
        py, px = p // width, p % width
        best_d = np.full(k, np.inf, np.float32)
        best_i = np.empty(k, np.int64)
        for y in range(max(py - radius, 0), min(py + radius + 1, height)):
            for x in range(max(px - radius, 0), min(px + radius + 1, width)):
                j = y * width + x
                distance = _squared_distance(points, p, j)
                if distance < best_d[k - 1]:
                    _insert(best_d, best_i, distance, j)
        out[p] = np.sqrt(best_d[k - 1])
    return out
