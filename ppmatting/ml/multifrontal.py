"""Exact sparse Cholesky for matting systems whose couplings are local on the pixel grid.

The window Laplacians (closed-form, learning-based, random walk) couple two unknown pixels only
when they are at most ``reach`` pixels apart in y and in x (``2 r`` for closed-form and
learning-based windows of radius r, ``r`` for random walk). That makes a geometric nested
dissection (George 1973) a good elimination order: cut the unknown region across its longer side
with a strip ``reach`` pixels wide, so the two sides share no coupling, order the strip after both
sides, recurse. A multifrontal Cholesky (Duff & Reid 1983) then factors the tree of strips with
dense LAPACK/BLAS (``potrf``, ``trsm``, ``syrk``) instead of SciPy's SuperLU, which computes both
triangles of an LU and spends most of its time outside dense kernels.

Measured on the bundled val images and the five alphamatting.com photos (22k-179k unknown
pixels): the float32 factorisation is several times faster than SuperLU's
(``benchmarks/bench_direct_solvers.py``; its figures and whole-method timings in docs/model_zoo.md). The numba kernels (``multifrontal_kernels``) compile on first use
and are cached on disk; nothing here runs at ``import ppmatting``.
"""
import numpy as np

LEAF_SIZE = 48   # pixels per leaf of the dissection (tuned on the alphamatting photos)
BALANCE = 0.25
IMBALANCE_WEIGHT = 1.0


class NotFactorable(RuntimeError):
    """The matrix does not fit the ordering or is not positive definite; use another solver."""


class PatternMismatch(NotFactorable):
    """The matrix couples pixels farther apart than the geometry's reach."""


class NotPositiveDefinite(NotFactorable):
    """A pivot was not positive (in this precision)."""


def _kernels():
    from ppmatting.ml import multifrontal_kernels  # numba: compiled/cached on first use

    return multifrontal_kernels


def dissection_order(ys, xs, reach, leaf_size=LEAF_SIZE, balance=BALANCE, imbalance_weight=IMBALANCE_WEIGHT):
    """Elimination order of pixels (ys, xs) and its tree; see ``nested_dissection``."""
    kernels = _kernels()
    return kernels.nested_dissection(np.ascontiguousarray(ys, dtype=np.int64),
                                     np.ascontiguousarray(xs, dtype=np.int64), int(reach),
                                     int(leaf_size), float(balance), float(imbalance_weight))


class MultifrontalCholesky:
    """``A = P^T L L^T P`` for a symmetric positive definite CSR ``matrix`` whose row i is the
    pixel at (ys[i], xs[i]) and couples only pixels within ``reach`` in y and x.

    ``dtype`` float32 halves the factor's memory and time; use it as a preconditioner (see
    ``sparse_solve.direct_solve``). Raises :class:`NotFactorable` when the pattern has a longer
    coupling than ``reach`` or the matrix is not positive definite.
    """

    def __init__(self, matrix, ys, xs, reach, dtype=np.float64, leaf_size=LEAF_SIZE):
        kernels = _kernels()
        n = matrix.shape[0]
        self.n = n
        perm, own_lo, own_hi, child_a, child_b = dissection_order(ys, xs, reach, leaf_size)
        self.perm = perm
        matrix = matrix.tocsr()
        indptr, indices, values = kernels.permute_symmetric(
            matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64),
            matrix.data.astype(np.float64), perm)
        ok, bnd_ptr, bnd_idx, fac_ptr, stack_need, front_max = kernels.factor_symbolic(
            indptr, indices, own_lo, own_hi, child_a, child_b)
        if not ok:
            raise PatternMismatch(f"the matrix couples pixels more than {reach} apart")
        self.factor_entries = int(fac_ptr[-1])
        factor = np.empty(self.factor_entries, dtype)
        code, node = kernels.factor_numeric(
            indptr, indices, values, own_lo, own_hi, child_a, child_b,
            bnd_ptr, bnd_idx, fac_ptr, factor, np.empty(max(int(stack_need), 1), dtype),
            np.empty(max(int(front_max) ** 2, 1), dtype), np.dtype(dtype) == np.float32)
        if code != kernels.OK:
            raise NotPositiveDefinite(f"not positive definite (front {node} of {own_lo.size})")
        self._parts = (factor, fac_ptr, own_lo, own_hi, bnd_ptr, bnd_idx)

    def solve(self, rhs):
        """x (float64) with ``A x = rhs``."""
        rhs = np.asarray(rhs, dtype=np.float64)
        x_permuted = _kernels().solve_factored(*self._parts, rhs[self.perm])
        x = np.empty(self.n)
        x[self.perm] = x_permuted
        return x

    def factor_bytes(self):
        return self._parts[0].nbytes
