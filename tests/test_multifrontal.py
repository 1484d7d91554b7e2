"""Multifrontal Cholesky over a geometric nested dissection (``multifrontal.py`` and its numba
kernels), its use by ``sparse_solve.direct_solve``, and the numba closed-form band build.

Matrices are small (a few hundred rows) so every check is against an exact reference: SciPy's
``spsolve`` / SuperLU, pymatting's whole-image Laplacian, or brute-force pair distances."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from scipy.spatial import cKDTree

from ppmatting.ml import laplacians as lap
from ppmatting.ml import multifrontal as mf
from ppmatting.ml import sparse_solve as ss
from ppmatting.ml.methods import pixel_geometry


# ---- pixel sets and matrices ---------------------------------------------------------------------
def _ring():
    """A wavy annulus: the shape of a trimap's unknown band around a subject."""
    yy, xx = np.mgrid[:48, :56]
    angle = np.arctan2(yy - 24.0, xx - 28.0)
    dist = np.hypot(yy - 24.0, xx - 28.0)
    inner = 9.0 + 2.0 * np.sin(3 * angle)
    return np.nonzero((dist >= inner) & (dist <= inner + 5.0 + np.cos(5 * angle)))


def _two_blobs():
    yy, xx = np.mgrid[:30, :60]
    blobs = (np.hypot(yy - 10, xx - 10) <= 6) | (np.hypot(yy - 16, xx - 42) <= 7)
    return np.nonzero(blobs)


def _diagonal():
    t = np.arange(60)
    return t, t + 3


def _single():
    return np.array([5]), np.array([7])


def _rectangle():
    return np.divmod(np.arange(17 * 23), 23)


REGIONS = {"ring": _ring, "two_blobs": _two_blobs, "diagonal": _diagonal, "single": _single,
           "rectangle": _rectangle}


def region(name, seed=0):
    """Pixel coordinates (int64) of a region, rows in a random order (the solver must not rely on
    the row-major order of ``split.unknown``)."""
    ys, xs = REGIONS[name]()
    ys, xs = np.asarray(ys, np.int64), np.asarray(xs, np.int64)
    order = np.random.default_rng(seed).permutation(ys.size)
    return ys[order], xs[order]


def local_pairs(ys, xs, reach):
    """All pairs (i < j) of pixels at most ``reach`` apart in y and in x."""
    points = np.column_stack([ys, xs]).astype(np.float64)
    pairs = cKDTree(points).query_pairs(reach + 0.5, p=np.inf, output_type="ndarray")
    return pairs.reshape(-1, 2)


def local_spd(ys, xs, reach, seed, shift=(0.05, 0.5)):
    """Random symmetric weights to every neighbour within ``reach``: graph Laplacian plus a
    positive diagonal shift (symmetric positive definite, grid-local)."""
    rng = np.random.default_rng(seed)
    n = ys.size
    pairs = local_pairs(ys, xs, reach)
    weights = rng.uniform(0.1, 1.0, len(pairs))
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    w = scipy.sparse.csr_matrix((np.concatenate([weights, weights]), (rows, cols)), shape=(n, n))
    degree = np.asarray(w.sum(axis=1)).ravel()
    return (scipy.sparse.diags(degree + rng.uniform(*shift, n)) - w).tocsr()


def relative_residual(matrix, x, rhs):
    return np.linalg.norm(rhs - matrix @ x) / np.linalg.norm(rhs)


def blurred_image(height, width, seed, sigma=3.0, amplitude=0.3):
    """Smooth random colours around mid-grey: texture like a photo's, no flat windows."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(size=(height, width, 3)), (0, 0), sigma)
    noise = (noise - noise.mean()) / noise.std()
    return np.clip(0.5 + 0.25 * amplitude * noise, 0.0, 1.0)


def ring_trimap(height, width):
    """Foreground disc, unknown ring around it, background outside."""
    yy, xx = np.mgrid[:height, :width]
    dist = np.hypot(yy - height / 2, (xx - width / 2) * 0.8)
    return np.where(dist < 7, 255, np.where(dist < 13, 128, 0)).astype(np.uint8)


# ---- 1. the nested dissection --------------------------------------------------------------------
def subtree_starts(own_lo, child_a):
    """First position of each node's subtree (children are numbered before their parent)."""
    start = own_lo.copy()
    for node in range(own_lo.size):
        if child_a[node] >= 0:
            start[node] = start[child_a[node]]
    return start


@pytest.mark.parametrize("leaf_size", [8, mf.LEAF_SIZE])
@pytest.mark.parametrize("reach", [1, 2, 4])
@pytest.mark.parametrize("name", sorted(REGIONS))
def test_dissection_is_a_valid_nested_dissection(name, reach, leaf_size):
    ys, xs = region(name, seed=reach)
    n = ys.size
    perm, own_lo, own_hi, child_a, child_b = mf.dissection_order(ys, xs, reach, leaf_size)
    n_nodes = own_lo.size
    # a true permutation of range(n)
    assert perm.shape == (n,) and np.array_equal(np.sort(perm), np.arange(n))
    # own ranges are disjoint and cover 0..n
    assert (own_lo <= own_hi).all() and own_lo.min() >= 0 and own_hi.max() == n
    cover = np.zeros(n, np.int64)
    for lo, hi in zip(own_lo, own_hi):
        cover[lo:hi] += 1
    assert (cover == 1).all()
    # a binary tree, children numbered (and eliminated) before their parent, the root last
    assert ((child_a >= 0) == (child_b >= 0)).all()
    parents = np.zeros(n_nodes, np.int64)
    for node in range(n_nodes):
        for child in (child_a[node], child_b[node]):
            if child >= 0:
                assert child < node
                assert own_hi[child] <= own_lo[node]
                parents[child] += 1
    assert parents[-1] == 0 and (parents[:-1] == 1).all()
    # postorder: [left subtree][right subtree][own] is one contiguous range (what the symbolic
    # factorisation's "boundary index below own_lo" test relies on)
    start = subtree_starts(own_lo, child_a)
    assert start[-1] == 0 and own_hi[-1] == n
    internal = np.flatnonzero(child_a >= 0)
    if name != "single":
        assert internal.size > 0  # each of these regions can be cut: the checks are not vacuous
    for node in internal:
        a, b = child_a[node], child_b[node]
        assert start[node] == start[a] and own_hi[a] == start[b] and own_hi[b] == own_lo[node]
        left, right = perm[start[a]:own_hi[a]], perm[start[b]:own_hi[b]]
        # the key property: the two sides share no coupling within reach
        near = ((np.abs(ys[left][:, None] - ys[right][None, :]) <= reach)
                & (np.abs(xs[left][:, None] - xs[right][None, :]) <= reach))
        assert not near.any(), (node, np.argwhere(near)[:3])
        # balanced cut (documented BALANCE) and a separator inside one reach-wide strip
        size = own_hi[node] - start[node]
        assert min(left.size, right.size) >= mf.BALANCE * size
        sep = perm[own_lo[node]:own_hi[node]]
        if sep.size:
            assert (np.ptp(ys[sep]) < reach) or (np.ptp(xs[sep]) < reach)
    # a leaf holds more than leaf_size pixels only when no admissible cut exists: a reach-wide
    # strip with pixels on both sides and at least BALANCE of them on each side
    for node in np.flatnonzero(child_a < 0):
        pixels = perm[own_lo[node]:own_hi[node]]
        if pixels.size > leaf_size:
            for coords in (ys[pixels], xs[pixels]):
                for cut in range(coords.min() + 1, coords.max() - reach + 1):
                    sides = (coords < cut).sum(), (coords >= cut + reach).sum()
                    assert min(sides) < mf.BALANCE * pixels.size, (node, cut)


def test_disconnected_blobs_are_split_with_an_empty_separator():
    ys, xs = region("two_blobs")
    perm, own_lo, own_hi, child_a, child_b = mf.dissection_order(ys, xs, 2, 8)
    root = own_lo.size - 1
    assert own_lo[root] == own_hi[root]  # the gap between the blobs needs no separator pixels
    start = subtree_starts(own_lo, child_a)
    a, b = child_a[root], child_b[root]
    left, right = perm[start[a]:own_hi[a]], perm[start[b]:own_hi[b]]
    # one whole blob on each side
    assert (xs[left] < 30).all() and (xs[right] > 30).all()
    assert left.size + right.size == ys.size


# ---- 2. the factorisation on random grid-local SPD matrices ------------------------------------
@pytest.mark.parametrize("name, reach, leaf_size", [
    ("ring", 1, 4), ("ring", 2, 48), ("ring", 4, 8), ("two_blobs", 2, 8),
    ("diagonal", 1, 2), ("rectangle", 2, 1), ("single", 1, 48)])
def test_factor_solves_random_local_spd(name, reach, leaf_size):
    ys, xs = region(name, seed=11)
    matrix = local_spd(ys, xs, reach, seed=12)
    rhs = np.random.default_rng(13).normal(size=ys.size)
    reference = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    factor64 = mf.MultifrontalCholesky(matrix, ys, xs, reach, np.float64, leaf_size=leaf_size)
    x64 = factor64.solve(rhs)
    assert x64.dtype == np.float64 and x64.shape == rhs.shape
    assert relative_residual(matrix, x64, rhs) < 1e-10
    assert np.linalg.norm(x64 - reference) <= 1e-9 * np.linalg.norm(reference)
    factor32 = mf.MultifrontalCholesky(matrix, ys, xs, reach, np.float32, leaf_size=leaf_size)
    x32 = factor32.solve(rhs)
    assert x32.dtype == np.float64
    assert relative_residual(matrix, x32, rhs) < 1e-5
    assert np.linalg.norm(x32 - reference) <= 1e-4 * np.linalg.norm(reference)
    assert factor32.factor_entries == factor64.factor_entries
    assert factor32.factor_bytes() * 2 == factor64.factor_bytes()
    # the float32 factor refined by float64 conjugate gradients
    info = ss.SolveInfo()
    x = ss.multifrontal_solve(matrix, rhs, ss.Geometry(ys, xs, reach), info)
    assert info.converged and info.notes == [] and info.iterations <= 20
    assert relative_residual(matrix, x, rhs) <= 1e-7
    assert np.linalg.norm(x - reference) <= 1e-6 * np.linalg.norm(reference)


def test_factor_handles_duplicate_entries_and_matches_solve_system():
    """A CSR with duplicate (to be summed), unsorted, int32 column indices; and the whole
    ``solve_system(solver='direct', geometry=...)`` path."""
    ys, xs = region("ring", seed=3)
    matrix = local_spd(ys, xs, 2, seed=4)
    n = ys.size
    coo = matrix.tocoo()
    shuffle = np.random.default_rng(5).permutation(2 * coo.nnz)
    rows = np.concatenate([coo.row, coo.row])[shuffle]
    cols = np.concatenate([coo.col, coo.col])[shuffle]
    vals = np.concatenate([coo.data * 0.25, coo.data * 0.75])[shuffle]
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    messy = scipy.sparse.csr_matrix((vals[order], cols[order].astype(np.int32),
                                     indptr.astype(np.int32)), shape=(n, n))
    assert not messy.has_canonical_format
    rhs = np.random.default_rng(6).normal(size=n)
    x = mf.MultifrontalCholesky(messy, ys, xs, 2, leaf_size=8).solve(rhs)
    assert relative_residual(matrix, x, rhs) < 1e-10
    info = ss.SolveInfo()
    y = ss.solve_system(matrix, rhs, solver="direct", info=info, geometry=ss.Geometry(ys, xs, 2))
    assert info.solver == "direct (multifrontal)" and info.notes == []
    assert np.linalg.norm(y - x) <= 1e-6 * np.linalg.norm(x)


def test_permute_symmetric_is_p_a_pt():
    from ppmatting.ml import multifrontal_kernels as kernels

    ys, xs = region("two_blobs", seed=7)
    matrix = local_spd(ys, xs, 1, seed=8)
    perm = np.random.default_rng(9).permutation(ys.size).astype(np.int64)
    indptr, indices, values = kernels.permute_symmetric(
        matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64), matrix.data, perm)
    ours = scipy.sparse.csr_matrix((values, indices, indptr), shape=matrix.shape).toarray()
    dense = matrix.toarray()
    assert np.array_equal(ours, dense[np.ix_(perm, perm)])


# ---- 3. real matting systems ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, radius", [("cf", 1), ("cf", 2), ("lbdm", 1), ("rw", 1), ("rw", 2)])
def test_matting_systems_match_superlu(kind, radius):
    image = blurred_image(36, 44, seed=radius)
    split = lap.split_trimap(ring_trimap(36, 44))
    if kind == "cf":
        system, reach = lap.cf_reduced_system(image, split, radius=radius), 2 * radius
    elif kind == "lbdm":  # learning-based windows couple 2r apart too (classical.py uses 2r)
        system, reach = lap.lbdm_reduced_system(image, split, radius=radius), 2 * radius
    else:
        system, reach = lap.rw_reduced_system(image, split, radius=radius), radius
    assert split.n_unknown > 4 * mf.LEAF_SIZE  # several fronts at the default leaf size
    info = ss.SolveInfo()
    ours = ss.direct_solve(system.matrix, system.rhs, info,
                           geometry=pixel_geometry(split, reach))
    assert info.solver == "direct (multifrontal)" and info.notes == [], info
    theirs = ss.superlu_solve(system.matrix, system.rhs)
    assert np.abs(ours - theirs).max() < 1e-8
    # not a trivial solution: alpha spans the fg/bg gap across the ring
    assert ours.max() - ours.min() > 0.5
    # the float64 factor alone, no refinement
    ys, xs = np.divmod(split.unknown, split.width)
    exact = mf.MultifrontalCholesky(system.matrix, ys, xs, reach).solve(system.rhs)
    assert np.abs(exact - theirs).max() < 1e-8


# ---- 4. failure paths ----------------------------------------------------------------------------
def _with_long_coupling(matrix, i, j, weight=0.5):
    """Add one edge i-j to a graph-Laplacian-like matrix (stays symmetric positive definite)."""
    n = matrix.shape[0]
    extra = scipy.sparse.csr_matrix(([weight, weight, -weight, -weight], ([i, j, i, j],
                                                                         [i, j, j, i])),
                                    shape=(n, n))
    return (matrix + extra).tocsr()


def test_coupling_longer_than_reach_is_refused_and_direct_solve_falls_back():
    ys, xs = region("rectangle", seed=21)
    reach = 2
    base = local_spd(ys, xs, reach, seed=22)
    # opposite corners: any balanced cut, across either axis, separates them
    i = int(np.flatnonzero((ys == 0) & (xs == 0))[0])
    j = int(np.flatnonzero((ys == ys.max()) & (xs == xs.max()))[0])
    matrix = _with_long_coupling(base, i, j)
    for leaf_size in (8, mf.LEAF_SIZE):
        with pytest.raises(mf.NotFactorable, match="more than 2 apart"):
            mf.MultifrontalCholesky(matrix, ys, xs, reach, leaf_size=leaf_size)
    rhs = np.random.default_rng(23).normal(size=ys.size)
    info = ss.SolveInfo()
    x = ss.direct_solve(matrix, rhs, info, geometry=ss.Geometry(ys, xs, reach))
    assert info.solver == "direct (superlu)"
    assert any("multifrontal Cholesky failed" in note for note in info.notes), info.notes
    reference = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    assert np.linalg.norm(x - reference) <= 1e-6 * np.linalg.norm(reference)
    # the same matrix with a geometry that allows the coupling is factored exactly
    wide = int(max(ys.max(), xs.max()))
    x_wide = mf.MultifrontalCholesky(matrix, ys, xs, wide).solve(rhs)
    assert relative_residual(matrix, x_wide, rhs) < 1e-10


def test_geometry_narrower_than_the_window_is_refused():
    # closed-form couples pixels 2r apart; declaring reach r must not give a wrong answer
    image = blurred_image(36, 44, seed=5)
    split = lap.split_trimap(ring_trimap(36, 44))
    system = lap.cf_reduced_system(image, split, radius=1)
    ys, xs = np.divmod(split.unknown, split.width)
    with pytest.raises(mf.NotFactorable):
        mf.MultifrontalCholesky(system.matrix, ys, xs, 1)
    info = ss.SolveInfo()
    x = ss.direct_solve(system.matrix, system.rhs, info, geometry=pixel_geometry(split, 1))
    assert info.solver == "direct (superlu)"
    assert relative_residual(system.matrix, x, system.rhs) <= 1e-7


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_indefinite_matrix_is_not_factorable(dtype):
    ys, xs = region("ring", seed=31)
    matrix = local_spd(ys, xs, 2, seed=32).tolil()
    k = ys.size // 2
    matrix[k, k] = -1.0     # symmetric, but with a negative diagonal entry: indefinite
    matrix = matrix.tocsr()
    assert np.linalg.eigvalsh(matrix.toarray())[0] < 0
    with pytest.raises(mf.NotFactorable, match="not positive definite"):
        mf.MultifrontalCholesky(matrix, ys, xs, 2, dtype, leaf_size=8)
    assert issubclass(mf.NotFactorable, RuntimeError)  # solve_system's fallbacks catch it


def _tiled_nearly_singular(seed):
    """SPD (smallest eigenvalue ~1e-8, like random-walk systems with regularisation 1e-8 on
    unknown pixels cut off from the known ones): 3x3 tiles coupled only inside each tile."""
    ys, xs = np.divmod(np.arange(18 * 24), 24)
    pairs = local_pairs(ys, xs, 2)
    tile = (ys // 3) * 100 + xs // 3
    pairs = pairs[tile[pairs[:, 0]] == tile[pairs[:, 1]]]
    n = ys.size
    weights = np.random.default_rng(seed).uniform(0.2, 1.0, len(pairs))
    w = scipy.sparse.csr_matrix((np.concatenate([weights, weights]),
                                 (np.concatenate([pairs[:, 0], pairs[:, 1]]),
                                  np.concatenate([pairs[:, 1], pairs[:, 0]]))), shape=(n, n))
    degree = np.asarray(w.sum(axis=1)).ravel()
    return (scipy.sparse.diags(degree * (1.0 + 1e-8)) - w).tocsr(), ys, xs


def test_nearly_singular_spd_float64_factor_is_exact_float32_breaks_down():
    matrix, ys, xs = _tiled_nearly_singular(seed=41)
    assert np.linalg.eigvalsh(matrix.toarray())[0] > 0
    rhs = np.random.default_rng(42).normal(size=ys.size)
    x = mf.MultifrontalCholesky(matrix, ys, xs, 2, np.float64).solve(rhs)
    reference = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    assert np.linalg.norm(x - reference) <= 1e-6 * np.linalg.norm(reference)
    # in float32 the ~1e-8 pivots drown in rounding: the factor must refuse, not return garbage
    with pytest.raises(mf.NotFactorable, match="not positive definite"):
        mf.MultifrontalCholesky(matrix, ys, xs, 2, np.float32)


def test_multifrontal_solve_survives_a_float32_breakdown():
    matrix, ys, xs = _tiled_nearly_singular(seed=41)
    rhs = np.random.default_rng(42).normal(size=ys.size)
    info = ss.SolveInfo()
    x = ss.multifrontal_solve(matrix, rhs, ss.Geometry(ys, xs, 2), info)
    reference = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    assert np.linalg.norm(x - reference) <= 1e-6 * np.linalg.norm(reference)
    assert any("factorising in float64" in note for note in info.notes), info.notes


# ---- 5. numba closed-form band build against pymatting's whole-image build --------------------
def border_trimap(height, width, radius):
    """Unknown pixels in all four corners, along the left and bottom edges and in a ring in the
    middle, next to foreground and background: every kind of border window."""
    yy, xx = np.mgrid[:height, :width]
    trimap = np.zeros((height, width), np.uint8)
    trimap[np.hypot(yy - height / 2, xx - width / 2) < 6] = 255
    trimap[:, width - 2 * radius - 1:] = 255            # foreground touching the right edge
    ring = np.abs(np.hypot(yy - height / 2, xx - width / 2) - 7.5) < 1.5
    band = 4
    corners = ((yy < band) | (yy >= height - band)) & ((xx < band) | (xx >= width - band))
    edges = (xx < 2) & (yy > height // 3) | (yy >= height - 2) & (xx > width // 3)
    trimap[ring | corners | edges] = 128
    return trimap


@pytest.mark.parametrize("radius", [1, 2])
def test_band_build_equals_whole_image_build_at_the_border(radius):
    height, width = 24, 30
    image = blurred_image(height, width, seed=50 + radius, sigma=1.5, amplitude=1.0)
    trimap = border_trimap(height, width, radius)
    unknown = trimap == 128
    assert unknown[0, 0] and unknown[0, -1] and unknown[-1, 0] and unknown[-1, -1]
    split = lap.split_trimap(trimap)
    ours = lap.cf_reduced_system(image, split, radius=radius, whole_image=False)
    theirs = lap.cf_reduced_system(image, split, radius=radius, whole_image=True)
    a, b = ours.matrix.toarray(), theirs.matrix.toarray()
    assert np.abs(b).max() > 0.5 and np.abs(theirs.rhs).max() > 0.1  # not vacuous
    assert np.abs(a - b).max() < 1e-9
    assert np.abs(ours.rhs - theirs.rhs).max() < 1e-9
    # every coupling is within 2r in y and x (the reach handed to the multifrontal solver)
    rows, cols = np.nonzero(a)
    ys, xs = np.divmod(split.unknown, width)
    assert np.abs(ys[rows] - ys[cols]).max() <= 2 * radius
    assert np.abs(xs[rows] - xs[cols]).max() <= 2 * radius


# ---- 6. import cost ------------------------------------------------------------------------------
def test_import_ppmatting_loads_no_numba_kernels(repo_root):
    code = ("import sys, ppmatting\n"
            "bad = [m for m in ('numba', 'ppmatting.ml.multifrontal',\n"
            "                   'ppmatting.ml.multifrontal_kernels',\n"
            "                   'ppmatting.ml.laplacian_kernels') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
