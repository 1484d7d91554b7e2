"""numba kernels of :mod:`ppmatting.ml.laplacians` (compiled on first use, cached on disk).

Imported only when a closed-form or learning-based system is built, never at
``import ppmatting``. Layout shared with ``laplacians.window_reduced_system``: the rows of the
unknown pixels are first accumulated as a *band*, n_unknown x (4r+1)^2, column ``o`` holding the
neighbour at offset ``(o // (4r+1) - 2r, o % (4r+1) - 2r)``.
"""
import numba
import numpy as np


@numba.njit(cache=True)
def cf_band(image, pos, centres_y, centres_x, radius, epsilon):
    """Closed-form matting (Levin et al. 2008) window blocks accumulated into the band.

    For each window (centre ``centres_y[t], centres_x[t]``, (2r+1)^2 pixels with colours I) the
    block is ``delta_ij - (1 + (I_i - mu)^T (Sigma + eps/n Id)^-1 (I_j - mu)) / n`` with pymatting's
    regularisation (``eps`` added to the sum of outer products before dividing by n); only the
    rows of unknown pixels (``pos >= 0``) are kept."""
    w = image.shape[1]
    size = 2 * radius + 1
    area = size * size
    span = 4 * radius + 1
    n_unknown = 0
    for value in pos:
        if value >= 0:
            n_unknown += 1
    band = np.zeros((n_unknown, span * span))
    centred = np.empty((area, 3))
    rows = np.empty(area, np.int64)
    weighted = np.empty(3)
    for t in range(centres_y.size):
        cy, cx = centres_y[t], centres_x[t]
        mean0 = mean1 = mean2 = 0.0
        for a in range(area):
            y = cy + a // size - radius
            x = cx + a % size - radius
            centred[a, 0] = image[y, x, 0]
            centred[a, 1] = image[y, x, 1]
            centred[a, 2] = image[y, x, 2]
            mean0 += image[y, x, 0]
            mean1 += image[y, x, 1]
            mean2 += image[y, x, 2]
            rows[a] = pos[y * w + x]
        mean0 /= area
        mean1 /= area
        mean2 /= area
        s00 = s01 = s02 = s11 = s12 = s22 = 0.0
        for a in range(area):
            c0 = centred[a, 0] - mean0
            c1 = centred[a, 1] - mean1
            c2 = centred[a, 2] - mean2
            centred[a, 0], centred[a, 1], centred[a, 2] = c0, c1, c2
            s00 += c0 * c0
            s01 += c0 * c1
            s02 += c0 * c2
            s11 += c1 * c1
            s12 += c1 * c2
            s22 += c2 * c2
        s00 = (s00 + epsilon) / area
        s11 = (s11 + epsilon) / area
        s22 = (s22 + epsilon) / area
        s01 /= area
        s02 /= area
        s12 /= area
        # inverse of the symmetric 3x3 matrix by cofactors
        i00 = s11 * s22 - s12 * s12
        i01 = s02 * s12 - s01 * s22
        i02 = s01 * s12 - s02 * s11
        i11 = s00 * s22 - s02 * s02
        i12 = s01 * s02 - s00 * s12
        i22 = s00 * s11 - s01 * s01
        det = s00 * i00 + s01 * i01 + s02 * i02
        i00 /= det
        i01 /= det
        i02 /= det
        i11 /= det
        i12 /= det
        i22 /= det
        for a in range(area):
            row = rows[a]
            if row < 0:
                continue
            c0, c1, c2 = centred[a, 0], centred[a, 1], centred[a, 2]
            weighted[0] = c0 * i00 + c1 * i01 + c2 * i02
            weighted[1] = c0 * i01 + c1 * i11 + c2 * i12
            weighted[2] = c0 * i02 + c1 * i12 + c2 * i22
            ay, ax = a // size, a % size
            for b in range(area):
                value = -(1.0 + weighted[0] * centred[b, 0] + weighted[1] * centred[b, 1]
                          + weighted[2] * centred[b, 2]) / area
                if a == b:
                    value += 1.0
                by, bx = b // size, b % size
                band[row, (by - ay + 2 * radius) * span + (bx - ax + 2 * radius)] += value
    return band


@numba.njit(cache=True)
def band_to_csr(band, unknown, pos, is_fg, height, width, radius):
    """Band rows -> CSR over the unknown pixels (columns ascending) and the right-hand side
    ``-sum`` of each row's entries on foreground pixels (background pixels contribute 0)."""
    n = unknown.size
    span = 4 * radius + 1
    reach = 2 * radius
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(n * span * span, np.int64)
    data = np.empty(n * span * span)
    rhs = np.zeros(n)
    count = 0
    for u in range(n):
        uy, ux = unknown[u] // width, unknown[u] % width
        for o in range(span * span):
            y = uy + o // span - reach
            x = ux + o % span - reach
            if y < 0 or y >= height or x < 0 or x >= width:
                continue
            j = y * width + x
            if pos[j] >= 0:
                indices[count] = pos[j]
                data[count] = band[u, o]
                count += 1
            elif is_fg[j]:
                rhs[u] -= band[u, o]
        indptr[u + 1] = count
    return indptr, indices[:count].copy(), data[:count].copy(), rhs


@numba.njit(cache=True)
def graph_rows(n, row_pos, col, weights, pos, is_fg, diagonal_scale):
    """CSR rows of ``s D - W`` over the unknown pixels from the edge list (row ``row_pos[e]``,
    pixel ``col[e]``, weight ``weights[e]``; duplicates summed) and the right-hand side (weights
    to foreground pixels). Columns of a row: in order of first appearance, diagonal last."""
    degree = np.zeros(n)
    self_weight = np.zeros(n)
    rhs = np.zeros(n)
    counts = np.zeros(n + 1, np.int64)
    for e in range(row_pos.size):
        u = row_pos[e]
        degree[u] += weights[e]
        if pos[col[e]] >= 0:
            counts[u + 1] += 1
        elif is_fg[col[e]]:
            rhs[u] += weights[e]
    # bucket the inner edges by row
    start = np.zeros(n + 1, np.int64)
    for u in range(n):
        start[u + 1] = start[u] + counts[u + 1]
    fill = start[:n].copy()
    bucket_col = np.empty(start[n], np.int64)
    bucket_val = np.empty(start[n])
    for e in range(row_pos.size):
        c = pos[col[e]]
        if c >= 0:
            u = row_pos[e]
            bucket_col[fill[u]] = c
            bucket_val[fill[u]] = weights[e]
            fill[u] += 1
    # merge duplicates row by row (slot_of[c]: where column c went in the current row)
    slot_of = np.full(n, -1, np.int64)
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(start[n] + n, np.int64)
    data = np.empty(start[n] + n)
    count = 0
    for u in range(n):
        row_start = count
        for t in range(start[u], start[u + 1]):
            c = bucket_col[t]
            if c == u:
                self_weight[u] += bucket_val[t]  # a self-loop: W_uu joins the diagonal
                continue
            if slot_of[c] >= row_start:
                data[slot_of[c]] -= bucket_val[t]
            else:
                slot_of[c] = count
                indices[count] = c
                data[count] = -bucket_val[t]
                count += 1
        indices[count] = u
        data[count] = diagonal_scale * degree[u] - self_weight[u]
        count += 1
        indptr[u + 1] = count
    return indptr, indices[:count].copy(), data[:count].copy(), rhs
