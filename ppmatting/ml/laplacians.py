"""Matting Laplacians reduced to the unknown pixels: ``A a_U = b``, ``A = L_UU``, ``b = -L_UK a_K``.

pymatting 1.1.16 builds each Laplacian over the whole image and (except for closed-form) solves
``(L + lambda C) a = lambda c`` over every pixel, the known ones held by a soft penalty. Holding the
known pixels exactly (hard constraints) leaves a system over the unknown pixels only, whose rows we
build directly. Facts (formulas, default parameters, window conventions) follow pymatting's
``pymatting/laplacian/*.py``; the code is ours.

* Window-based Laplacians (closed-form, learning-based): only the windows that contain an
  unknown pixel are evaluated (closed-form: a numba kernel, ``laplacian_kernels.py``;
  learning-based: numpy in chunks), so memory grows with the unknown region. Optionally
  pymatting's whole-image builder, keeping the unknown rows. pymatting evaluates windows centred
  at ``r <= y < h - r``, ``r <= x < w - r``; so do we.
* KNN: exact neighbours in pymatting's features (its k-d tree, or for the local pass an exact
  ring search on the pixel grid: :func:`knn_search`; tied distances may resolve differently).
  Rows of unknown pixels need each unknown pixel's neighbours and every pixel that lists an
  unknown pixel among its own neighbours; :func:`knn_query_pixels` says which pixels that takes.
* Random walk: pymatting's weight kernel, symmetric form ``(1 + reg) D - W``.
* Large kernel (LKM): a matrix-free operator (box filters), restricted to the unknown pixels.

pymatting (numba) is imported inside the functions, never at ``import ppmatting``.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from ppmatting.utils.errors import InputError


@dataclass
class TrimapSplit:
    """Flat (row-major) index sets of a trimap; ``pos[i]`` = row of pixel i in the reduced system
    (-1 for known pixels)."""
    height: int
    width: int
    is_unknown: np.ndarray   # bool, H*W
    is_fg: np.ndarray        # bool, H*W
    unknown: np.ndarray      # int64, indices of unknown pixels (ascending)
    pos: np.ndarray          # int32 (int64 for > 2^31 pixels), H*W

    @property
    def n_unknown(self):
        return int(self.unknown.size)


def split_trimap(trimap_u8):
    """``trimap_u8``: uint8 H x W in {0, 128, 255} -> :class:`TrimapSplit`."""
    height, width = trimap_u8.shape
    flat = trimap_u8.ravel()
    is_unknown = flat == 128
    unknown = np.flatnonzero(is_unknown)
    # int32 halves the memory traffic of the many index lookups (images up to 2^31 pixels)
    index_type = np.int32 if flat.size < 2 ** 31 - 1 else np.int64
    pos = np.full(flat.size, -1, dtype=index_type)
    pos[unknown] = np.arange(unknown.size, dtype=index_type)
    return TrimapSplit(height, width, is_unknown, flat == 255, unknown, pos)


@dataclass
class ReducedSystem:
    """``matrix`` (CSR, n_unknown x n_unknown, symmetric positive (semi)definite) and ``rhs``
    (float64, n_unknown): ``matrix @ alpha_U = rhs``."""
    matrix: object   # scipy.sparse.csr_matrix
    rhs: np.ndarray


# ---- window-based Laplacians (closed-form, learning-based) --------------------------------------
def check_window_fits(split, radius):
    size = 2 * radius + 1
    if split.height < size or split.width < size:
        raise InputError(f"image of {split.width}x{split.height} px is smaller than one "
                         f"{size}x{size} window (radius {radius})")


def _window_centres(split, radius):
    """Centres (ys, xs) of the (2r+1)^2 windows that lie inside the image and hold an unknown
    pixel: no other window contributes to a row of an unknown pixel."""
    size = 2 * radius + 1
    h, w = split.height, split.width
    check_window_fits(split, radius)
    mask = split.is_unknown.reshape(h, w).astype(np.uint8)
    touched = cv2.dilate(mask, np.ones((size, size), np.uint8)).astype(bool)
    inside = np.zeros((h, w), bool)
    inside[radius:h - radius, radius:w - radius] = True
    return np.nonzero(touched & inside)


def _lbdm_window_matrices(colors, epsilon):
    """Learning-based digital matting (Zheng & Kambhamettu 2009), linear kernel as in pymatting:
    ``X = [I, 1]`` (n x 4), ``K = X X^T``, ``F = (K + eps Id)^-1 K``; block
    ``(Id - F)(Id - F)^T``."""
    m, area, _ = colors.shape
    features = np.concatenate([colors, np.ones((m, area, 1))], axis=2)
    kernel = features @ features.transpose(0, 2, 1)
    eye = np.eye(area)
    residual = eye - np.linalg.solve(kernel + epsilon * eye, kernel)
    return residual @ residual.transpose(0, 2, 1)


def _window_offsets(radius):
    size = 2 * radius + 1
    dy, dx = np.divmod(np.arange(size * size), size)
    return dy - radius, dx - radius


def window_reduced_system(image01, split, radius, window_matrices, epsilon, chunk=65536):
    """Accumulate window blocks into the rows of unknown pixels and reduce.

    ``image01``: float64 H x W x 3. Rows are kept as a band of (4r+1)^2 neighbour offsets
    (n_unknown x (4r+1)^2, the same layout pymatting uses for the whole image), then split into
    unknown columns (the matrix) and known foreground columns (moved to the right-hand side).
    Memory: about (4r+1)^2 * 8 bytes per unknown pixel plus one chunk of windows.
    """
    w = split.width
    ys, xs = _window_centres(split, radius)
    oy, ox = _window_offsets(radius)
    area = oy.size
    span = 4 * radius + 1
    band_width = span * span
    band = np.zeros((split.n_unknown, band_width))
    band_flat = band.reshape(-1)
    for start in range(0, ys.size, chunk):
        cy, cx = ys[start:start + chunk], xs[start:start + chunk]
        py = cy[:, None] + oy[None, :]
        px = cx[:, None] + ox[None, :]
        blocks = window_matrices(image01[py, px], epsilon)
        rows = split.pos[py * w + px]                       # m x area, -1 for known pixels
        for a in range(area):
            keep = rows[:, a] >= 0
            if not keep.any():
                continue
            # row pixel a of each window, against all area pixels b of that window: within one
            # a, every window has a different row and the b's different columns, so += is exact
            columns = (oy - oy[a] + 2 * radius) * span + (ox - ox[a] + 2 * radius)
            flat = rows[keep, a][:, None] * band_width + columns[None, :]
            band_flat[flat] += blocks[keep, a, :]
    return _band_to_system(band, split, radius)


def _band_to_system(band, split, radius):
    import scipy.sparse  # imported where used: keeps ``import ppmatting`` light

    from ppmatting.ml import laplacian_kernels  # numba, compiled/cached on first use

    indptr, indices, data, rhs = laplacian_kernels.band_to_csr(
        band, split.unknown, split.pos, split.is_fg, split.height, split.width, int(radius))
    matrix = scipy.sparse.csr_matrix((data, indices, indptr),
                                     shape=(split.n_unknown, split.n_unknown))
    return ReducedSystem(matrix, rhs)


def reduce_full_laplacian(laplacian, split):
    """Rows of the unknown pixels of a whole-image Laplacian (CSR), split into unknown columns
    (the matrix) and known foreground columns (the right-hand side)."""
    import scipy.sparse

    rows = laplacian.tocsr()[split.unknown]
    rows.sum_duplicates()
    fg = split.is_fg.astype(np.float64)
    rhs = -(rows @ fg)
    column = split.pos[rows.indices]
    keep = column >= 0
    row_id = np.repeat(np.arange(split.n_unknown), np.diff(rows.indptr))
    counts = np.bincount(row_id[keep], minlength=split.n_unknown)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    matrix = scipy.sparse.csr_matrix((rows.data[keep], column[keep], indptr),
                                     shape=(split.n_unknown, split.n_unknown))
    return ReducedSystem(matrix, rhs)


def whole_image_build_bytes(height, width, entries_per_pixel):
    """Peak memory of pymatting's whole-image Laplacian builders: values and indices of
    ``entries_per_pixel`` entries a pixel ((4r+1)^2 for closed-form, (2r+1)^4 for learning-based),
    the CSR copy, then the row slice."""
    return height * width * entries_per_pixel * 8 * 5


def cf_reduced_system(image01, split, epsilon=1e-7, radius=1, whole_image=False):
    """Closed-form matting Laplacian (pymatting ``cf_laplacian``) reduced to unknown pixels.

    Default: only the windows touching unknown pixels are evaluated, by a numba kernel
    (``laplacian_kernels.cf_band``; memory grows with the unknown region). ``whole_image``:
    pymatting's own numba kernel over the whole image, then the unknown rows are kept (a
    cross-check; slower). Both give the same matrix (to 1e-9, tested)."""
    check_window_fits(split, radius)
    if whole_image:
        from pymatting.laplacian.cf_laplacian import cf_laplacian

        known = ~split.is_unknown.reshape(split.height, split.width)
        return reduce_full_laplacian(cf_laplacian(image01, epsilon, radius, known), split)
    from ppmatting.ml import laplacian_kernels  # numba, compiled/cached on first use

    ys, xs = _window_centres(split, radius)
    band = laplacian_kernels.cf_band(np.ascontiguousarray(image01, dtype=np.float64), split.pos,
                                     ys.astype(np.int64), xs.astype(np.int64), int(radius),
                                     float(epsilon))
    return _band_to_system(band, split, radius)


def lbdm_reduced_system(image01, split, epsilon=1e-7, radius=1, whole_image=False):
    """Learning-based matting Laplacian (pymatting ``lbdm_laplacian``) reduced to unknown pixels;
    ``whole_image`` as in :func:`cf_reduced_system`."""
    check_window_fits(split, radius)
    if whole_image:
        from pymatting.laplacian.lbdm_laplacian import lbdm_laplacian

        return reduce_full_laplacian(lbdm_laplacian(image01, epsilon, radius), split)
    return window_reduced_system(image01, split, radius, _lbdm_window_matrices, epsilon,
                                 chunk=16384)


# ---- graph Laplacians (KNN, random walk) ---------------------------------------------------------
def edges_to_system(split, row_pos, col, weights, diagonal_scale=1.0):
    """Reduced system of a graph Laplacian from the edges touching unknown pixels.

    ``row_pos`` (reduced row of an unknown pixel u), ``col`` (pixel index j), ``weights`` (W_uj;
    an array or a scalar): every entry of the rows U of a symmetric weight matrix W, duplicates
    summed. Row u of ``s D - W`` (``D_u = sum_j W_uj``, ``s = diagonal_scale``) with known
    neighbours moved to the right-hand side. This equals the row-normalised Laplacian
    ``s I - D^-1 W`` (pymatting's KNN and random-walk form) with row u multiplied by ``D_u``:
    same solution, but symmetric.
    """
    import scipy.sparse  # imported where used: keeps ``import ppmatting`` light

    from ppmatting.ml import laplacian_kernels  # numba, compiled/cached on first use

    n = split.n_unknown
    row_pos = np.asarray(row_pos, np.int64)
    weights = np.broadcast_to(np.asarray(weights, np.float64), row_pos.shape)
    indptr, indices, data, rhs = laplacian_kernels.graph_rows(
        n, row_pos, np.asarray(col, np.int64), np.ascontiguousarray(weights), split.pos,
        split.is_fg, float(diagonal_scale))
    matrix = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))
    return ReducedSystem(matrix, rhs)


def knn_features(image01, distance_weight):
    """pymatting's KNN features: float32 (H*W) x 5 = [r, g, b, dw x, dw y], x and y in [0, 1]."""
    h, w = image01.shape[:2]
    features = np.empty((h * w, 5), dtype=np.float32)
    features[:, :3] = image01.reshape(-1, 3)
    features[:, 3] = np.tile(np.linspace(0.0, 1.0, w) * distance_weight, h)
    features[:, 4] = np.repeat(np.linspace(0.0, 1.0, h) * distance_weight, w)
    return features


# position weight from which a KNN pass counts as local: its queries are pruned and answered by
# the ring search of ``knn_kernels`` instead of a k-d tree
LOCAL_PASS_MIN_WEIGHT = 0.5
# the ring search scans (d_k / pixel step)^2 pixels a query, and the pixel step shrinks as the
# image grows: measured 1.7x faster than pymatting's tree at 320 px, 1.05-1.15x at 800 px; larger
# images use the tree
RING_SEARCH_MAX_SIDE = 1024


def knn_query_pixels(split, features, k, distance_weight, reverse_band=None):
    """Pixels whose neighbour lists can hold an edge touching an unknown pixel.

    Every unknown pixel, plus each known pixel j that may list an unknown pixel u among its k
    nearest, which needs ``|f_j - f_u| <= d_k(j)``. Exact test (no approximation): the feature
    distance to any unknown pixel is at least ``dw * (pixel distance to the unknown region) /
    (max(H, W) - 1)``, and ``d_k(j)`` is at most the k-th distance inside j's 5x5 window. It
    prunes most known pixels of pymatting's local pass (dw = 2). For a nearly colour-only pass
    (dw < 0.5, pymatting's 0.1) it would keep almost every pixel (measured), so it is skipped and
    every pixel is queried, unless ``reverse_band`` (pixels) limits the known pixels to those
    within that distance of the unknown region: an approximation, off by default.
    """
    h, w = split.height, split.width
    if split.n_unknown == 0:
        return np.zeros(0, dtype=np.int64)
    known = (~split.is_unknown).reshape(h, w).astype(np.uint8)
    pixel_distance = None
    query = np.ones(h * w, dtype=bool)
    if k <= 24 and distance_weight >= LOCAL_PASS_MIN_WEIGHT:
        pixel_distance = cv2.distanceTransform(known, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).ravel()
        from ppmatting.ml import knn_kernels  # numba, compiled/cached on first use

        bound = knn_kernels.kth_window_distance(features, w, k, 2)
        lower = distance_weight * pixel_distance / max(max(h, w) - 1, 1)
        query = split.is_unknown | (lower <= bound * (1 + 1e-5) + 1e-7)
    if reverse_band is not None:
        if pixel_distance is None:
            pixel_distance = cv2.distanceTransform(known, cv2.DIST_L2,
                                                   cv2.DIST_MASK_PRECISE).ravel()
        query &= split.is_unknown | (pixel_distance <= float(reverse_band))
    return np.flatnonzero(query)


def knn_search(features, query, k, distance_weight, height, width):
    """The k nearest pixels (int64, len(query) x k; the pixel itself included) of the pixels
    ``query`` in ``features`` ((H*W) x 5 float32, :func:`knn_features`)."""
    if distance_weight >= LOCAL_PASS_MIN_WEIGHT and max(height, width) <= RING_SEARCH_MAX_SIDE:
        from ppmatting.ml import knn_kernels  # numba, compiled/cached on first use

        # one pixel step moves a feature by at least dw / (max(H, W) - 1); the margin covers
        # float32 rounding of the positions
        step = distance_weight / max(max(height, width) - 1, 1) * (1 - 1e-5)
        return knn_kernels.query_rings(features, np.asarray(query, np.int64), k, width, step)
    from pymatting.util.kdtree import KDTree  # numba; compiled and cached on first use

    _, neighbours = KDTree(features).query(features[query], k)
    return neighbours


def knn_reduced_system(image01, split, n_neighbors=(20, 10), distance_weights=(2.0, 0.1),
                       reverse_band=None):
    """KNN matting Laplacian (Chen et al. 2013, pymatting's ``knn_laplacian`` with its binary
    kernel) reduced to the unknown pixels.

    For each pass (k, dw): the k nearest pixels of the pixels from :func:`knn_query_pixels`
    (local passes: ``knn_kernels.query_rings``; others: pymatting's k-d tree, same features);
    edge i -> j of weight 1 for each neighbour j of a queried pixel i. ``W = K + K^T`` as in
    pymatting.
    """

    h, w = split.height, split.width
    if len(n_neighbors) != len(distance_weights):
        raise InputError(f"KNN: n_neighbors {list(n_neighbors)} and distance_weights "
                         f"{list(distance_weights)} must have the same length")
    row_parts, col_parts = [], []
    for k, dw in zip(n_neighbors, distance_weights):
        k = int(k)
        if k < 1 or k > h * w:
            raise InputError(f"KNN: n_neighbors={k} needs 1 <= k <= number of pixels ({h * w})")
        features = knn_features(image01, float(dw))
        query = knn_query_pixels(split, features, k, float(dw), reverse_band)
        neighbours = knn_search(features, query, k, float(dw), h, w).astype(split.pos.dtype)
        query = query.astype(split.pos.dtype)
        del features
        # W = K + K^T: row u holds u's own neighbours (forward) ...
        query_pos = split.pos[query]
        forward = query_pos >= 0
        row_parts.append(np.repeat(query_pos[forward], k))
        col_parts.append(neighbours[forward].ravel())
        # ... and every queried pixel that lists u among its neighbours (reverse)
        target_pos = split.pos[neighbours]
        reverse = target_pos >= 0
        row_parts.append(target_pos[reverse])
        col_parts.append(query[np.nonzero(reverse)[0]])
        del neighbours, target_pos, reverse
    return edges_to_system(split, np.concatenate(row_parts), np.concatenate(col_parts), 1.0)


def rw_reduced_system(image01, split, sigma=0.033, radius=1, regularization=1e-8):
    """Random-walk matting (Grady et al. 2005) as pymatting's ``rw_laplacian``: weights
    ``exp(-900 |I_i - I_j|^2)`` to the (2r+1)^2 neighbours (coordinates clamped at the border),
    Laplacian ``(1 + reg) I - D^-1 W``. pymatting 1.1.16 uses the constant 900 (about 1/0.033^2)
    and ignores ``sigma``; so do we, for identical results."""
    from pymatting.laplacian.rw_laplacian import _rw_laplacian

    del sigma
    values, rows, cols = _rw_laplacian(image01, 0.033, int(radius))
    # pymatting's W lists both directions of each edge already (row i: its window neighbours)
    rows = split.pos[rows]
    keep = rows >= 0
    return edges_to_system(split, rows[keep], cols[keep].astype(np.int64), values[keep],
                           1.0 + regularization)


# ---- large-kernel matting (matrix-free) ---------------------------------------------------------
@dataclass
class LaplacianOperator:
    """A whole-image Laplacian that is applied, never stored: ``matvec(x)`` = L @ x for float64
    x of length H*W, and L's ``diagonal`` (float64, H*W)."""
    matvec: object
    diagonal: np.ndarray


@dataclass
class ReducedOperator:
    """A matrix-free reduced system: ``matvec(x_U)`` = L_UU @ x_U, the ``diagonal`` of L_UU and
    ``rhs`` = -L_UK a_K (float64, n_unknown each)."""
    matvec: object
    diagonal: np.ndarray
    rhs: np.ndarray


def lkm_operator(image01, epsilon=1e-7, radius=10):
    """Large-kernel matting (He, Sun, Tang, CVPR 2010): pymatting's ``lkm_laplacian``, the
    closed-form Laplacian of (2r+1)^2 windows applied with box filters, as a
    :class:`LaplacianOperator` over the whole image."""
    from pymatting.laplacian.lkm_laplacian import lkm_laplacian

    apply_l, diagonal = lkm_laplacian(image01, epsilon=epsilon, radius=radius)
    return LaplacianOperator(apply_l, diagonal)


def lkm_reduced_operator(image01, split, epsilon=1e-7, radius=10):
    """The large-kernel Laplacian (:func:`lkm_operator`) restricted to the unknown pixels:
    a :class:`ReducedOperator` for ``L_UU a_U = -L_UK a_K``."""
    check_window_fits(split, radius)
    laplacian = lkm_operator(image01, epsilon, radius)
    n = split.height * split.width
    known_values = np.zeros(n)
    known_values[split.is_fg] = 1.0
    rhs = -laplacian.matvec(known_values)[split.unknown]
    scratch = np.zeros(n)

    def matvec(x_unknown):
        scratch[:] = 0.0
        scratch[split.unknown] = x_unknown
        return laplacian.matvec(scratch)[split.unknown]

    return ReducedOperator(matvec, laplacian.diagonal[split.unknown], rhs)
