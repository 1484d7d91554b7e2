"""Solving the reduced matting systems ``A x = b`` (A symmetric positive definite, sparse).

Measured on the five alphamatting.com photos (800 px wide, 39k-179k unknown pixels; see
``benchmarks/bench_classical.py`` and docs/model_zoo.md):

* ``direct``: exact. When the system comes with its pixel geometry (the window Laplacians:
  closed-form, learning-based, random walk), a multifrontal Cholesky over a geometric nested
  dissection (``multifrontal.py``): its factorisation is several times faster than SuperLU's on
  closed-form systems (``benchmarks/bench_direct_solvers.py``; figures in docs/model_zoo.md).
  Otherwise, or if that fails, ``superlu``. Its fill grows like ``n log n``: it is the default up
  to ``DIRECT_MAX_UNKNOWNS``.
* ``superlu``: sparse LU (SciPy's SuperLU) with a minimum-degree ordering of ``A + A^T`` and no
  pivoting (safe for SPD matrices). Exact, and for the window Laplacians 2-4x faster than
  pymatting's incomplete Cholesky + conjugate gradients.
* ``ichol``: conjugate gradients preconditioned with pymatting's thresholded incomplete Cholesky
  (what pymatting uses for closed-form). Less memory than ``direct`` on large systems.
* ``jacobi``: conjugate gradients with the diagonal as preconditioner. For KNN matting, whose
  long-range edges make any factorisation fill in, this is the fastest.

Our conjugate gradient loop computes dot products with ``np.einsum`` rather than BLAS: on a busy
2-core machine OpenBLAS's threads spin on vector dot products and made pymatting's ``cg`` up to
10x slower (measured; the benchmark pins OpenBLAS to one thread for both libraries).
"""
import math
from dataclasses import dataclass, field

import numpy as np

from ppmatting.ml.checks import check_choice
from ppmatting.utils.errors import InputError

SOLVERS = ("auto", "direct", "superlu", "ichol", "jacobi")
DIRECT_MAX_UNKNOWNS = 500_000


@dataclass
class SolveInfo:
    """What the last solve did (for logs and benchmarks)."""
    solver: str = ""
    iterations: int = 0
    relative_residual: float = 0.0
    converged: bool = True
    notes: list = field(default_factory=list)


def check_solver(name):
    """``name`` if it is one of :data:`SOLVERS`, else ConfigError."""
    return check_choice("solver", name, SOLVERS)


def _dot(a, b):
    return float(np.einsum("i,i->", a, b))


def conjugate_gradients(matvec, rhs, precondition=None, x0=None, rtol=1e-6, max_iterations=10000,
                        info=None):
    """Preconditioned conjugate gradients for SPD ``A``.

    Args:
        matvec: callable x -> A @ x (float64 vectors of length n), or a sparse matrix.
        rhs: float64 (n,).
        precondition: callable r -> M^-1 r, or None.
        x0: initial guess (n,) or None for zeros.
        rtol: stop when ``|b - A x| <= rtol * |b|``.
        max_iterations: iteration limit; when reached the current iterate is returned and
            ``info.converged`` is False (a matte that is not fully converged is still usable).
    Returns:
        x (float64, n).
    """
    if hasattr(matvec, "dot") and not callable(matvec):
        matvec = matvec.dot
    info = info if info is not None else SolveInfo()
    x = np.zeros_like(rhs) if x0 is None else np.array(x0, dtype=np.float64, copy=True)
    norm_b = math.sqrt(_dot(rhs, rhs))
    if norm_b == 0.0:
        info.iterations, info.relative_residual = 0, 0.0
        return np.zeros_like(rhs)
    residual = rhs - matvec(x)
    stop = rtol * norm_b
    rr = _dot(residual, residual)
    iterations = 0
    if math.sqrt(rr) > stop:
        z = precondition(residual) if precondition is not None else residual
        direction = z.copy()
        rz = _dot(residual, z)
        for iterations in range(1, max_iterations + 1):
            a_dir = matvec(direction)
            step = rz / _dot(direction, a_dir)
            x += step * direction
            residual -= step * a_dir
            rr = _dot(residual, residual)
            if math.sqrt(rr) <= stop:
                break
            z = precondition(residual) if precondition is not None else residual
            rz_new = _dot(residual, z)
            direction *= rz_new / rz
            direction += z
            rz = rz_new
    info.iterations = iterations
    info.relative_residual = math.sqrt(rr) / norm_b
    info.converged = math.sqrt(rr) <= stop
    return x


def jacobi_preconditioner(diagonal):
    inverse = 1.0 / np.where(diagonal > 0, diagonal, 1.0)
    return lambda r: r * inverse


def ichol_preconditioner(matrix, discard_threshold=1e-4, max_fill=200):
    """pymatting's thresholded incomplete Cholesky of ``matrix`` (CSR, SPD), at most
    ``max_fill`` entries per row kept in memory; when that is exceeded the threshold is raised
    tenfold (up to 1e-2) instead of failing."""
    from pymatting.preconditioner.ichol import ichol

    n = matrix.shape[0]
    threshold = discard_threshold
    while True:
        try:
            return ichol(matrix.tocsc(), discard_threshold=threshold,
                         max_nnz=int(max_fill * n + 16))
        except ValueError:
            if threshold >= 1e-2:
                raise
            threshold *= 10.0


@dataclass
class Geometry:
    """Where the rows of a system sit on the pixel grid: row i is pixel (ys[i], xs[i]), and two
    rows are coupled only when their pixels are at most ``reach`` apart in y and in x."""
    ys: np.ndarray
    xs: np.ndarray
    reach: int


def _refined(matrix, rhs, solve_approx, info):
    """x from conjugate gradients preconditioned by an approximate (float32) exact solve: two
    iterations reach rtol 1e-7 on the matting systems (measured). None if it does not."""
    x = conjugate_gradients(matrix, rhs, solve_approx, None, 1e-7, 20, info)
    if info.converged and np.isfinite(x).all():
        return x
    return None


def multifrontal_solve(matrix, rhs, geometry, info=None):
    """Exact solve by the multifrontal Cholesky of ``multifrontal.py``, factorised in float32
    and refined by float64 conjugate gradients (half the memory and about 40% less time than a
    float64 factor); a float64 factor if that does not converge. Raises
    ``multifrontal.NotFactorable`` when the matrix does not fit the geometry or is not positive
    definite."""
    from ppmatting.ml import multifrontal

    info = info if info is not None else SolveInfo()
    try:
        factor = multifrontal.MultifrontalCholesky(matrix, geometry.ys, geometry.xs,
                                                   geometry.reach, np.float32)
        x = _refined(matrix, rhs, factor.solve, info)
        if x is not None:
            return x
        info.notes.append("float32 factor not accurate enough; refactorising in float64")
    except multifrontal.NotPositiveDefinite as err:  # rounding on a nearly singular matrix
        info.notes.append(f"float32 factorisation failed ({err}); factorising in float64")
    factor = multifrontal.MultifrontalCholesky(matrix, geometry.ys, geometry.xs, geometry.reach,
                                               np.float64)
    info.iterations, info.relative_residual, info.converged = 0, 0.0, True
    return factor.solve(rhs)


def superlu_solve(matrix, rhs, info=None):
    """Exact solve by sparse LU (minimum degree on A + A^T, diagonal pivots), factorised in
    float32 and used as the preconditioner of float64 conjugate gradients (~25% less time and
    half the memory of a float64 factorisation). Falls back to float64 when the float32 factor
    is not usable."""
    import scipy.sparse.linalg  # ~0.1 s to import: only when a direct solve runs

    info = info if info is not None else SolveInfo()
    options = dict(permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    try:
        lu32 = scipy.sparse.linalg.splu(matrix.astype(np.float32).tocsc(), **options)

        def precondition(r):
            return lu32.solve(r.astype(np.float32)).astype(np.float64)

        x = _refined(matrix, rhs, precondition, info)
        if x is not None:
            return x
        info.notes.append("float32 factor not accurate enough; refactorising in float64")
    except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
        info.notes.append(f"float32 factorisation failed ({err}); using float64")
    lu = scipy.sparse.linalg.splu(matrix.tocsc(), **options)
    info.iterations, info.relative_residual, info.converged = 0, 0.0, True
    return lu.solve(rhs)


def direct_solve(matrix, rhs, info=None, geometry=None):
    """Exact solve: multifrontal Cholesky when ``geometry`` is known, else (or when that fails)
    SuperLU. Raises RuntimeError when neither can factor the matrix."""
    info = info if info is not None else SolveInfo()
    if geometry is not None:
        from ppmatting.ml.multifrontal import NotFactorable

        try:
            x = multifrontal_solve(matrix, rhs, geometry, info)
            info.solver = "direct (multifrontal)"
            return x
        except NotFactorable as err:
            info.notes.append(f"multifrontal Cholesky failed ({err}); using SuperLU")
    x = superlu_solve(matrix, rhs, info)
    info.solver = "direct (superlu)"
    return x


# ---- memory estimates (bytes), used to refuse before allocating ---------------------------------
def direct_bytes(n_unknown, nnz):
    """Exact factors of a 2-D window Laplacian grow like n log n: the entries per unknown pixel
    that SuperLU's L and U and the multifrontal Cholesky hold on the val images and the
    alphamatting photos (``benchmarks/bench_direct_solvers.py``; the counts are in docs/model_zoo.md)
    all stay below 20 log2 n, which we budget at 12 bytes (float64, the fallback) plus 50%
    workspace."""
    if n_unknown == 0:
        return 0
    fill = 20.0 * math.log2(max(n_unknown, 2)) * n_unknown + nnz
    return int(fill * 12 * 1.5)


def ichol_bytes(n_unknown, nnz):
    """pymatting's ichol reserves ``max_nnz`` entries up front but only the pages it fills
    become resident: measured 50-90 entries per row on closed-form systems (16 bytes each)."""
    return int(100 * n_unknown * 16 + nnz * 12 + 8 * n_unknown * 8)


def cg_bytes(n_unknown, nnz):
    return int(nnz * 12 + 8 * n_unknown * 8)


def choose_solver(requested, n_unknown, nnz, budget_bytes):
    """Pick the solver for ``auto``: ``direct`` while the system is small enough and its factor
    fits, else ``ichol`` if it fits, else ``jacobi``. An explicit choice is kept."""
    if requested != "auto":
        return requested
    if n_unknown <= DIRECT_MAX_UNKNOWNS and direct_bytes(n_unknown, nnz) <= budget_bytes:
        return "direct"
    if ichol_bytes(n_unknown, nnz) <= budget_bytes:
        return "ichol"
    return "jacobi"


def solver_bytes(solver, n_unknown, nnz):
    return {"direct": direct_bytes, "superlu": direct_bytes, "ichol": ichol_bytes,
            "jacobi": cg_bytes}[solver](n_unknown, nnz)


def solve_system(matrix, rhs, solver="auto", x0=None, rtol=1e-6, max_iterations=10000,
                 budget_bytes=None, discard_threshold=1e-4, info=None, geometry=None):
    """Solve ``matrix @ x = rhs`` (CSR SPD) with ``solver`` (see module doc); returns x.
    ``geometry`` (:class:`Geometry`) lets ``direct`` use the multifrontal Cholesky."""
    info = info if info is not None else SolveInfo()
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0)
    budget = budget_bytes if budget_bytes is not None else float("inf")
    solver = choose_solver(check_solver(solver), n, matrix.nnz, budget)
    info.solver = solver
    if solver in ("direct", "superlu"):
        try:
            if solver == "direct":
                x = direct_solve(matrix, rhs, info, geometry)
            else:
                x = superlu_solve(matrix, rhs, info)
            if np.isfinite(x).all():
                return x
            info.notes.append(f"{solver} solve gave non-finite values (singular system); "
                              "falling back to conjugate gradients")
        except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
            info.notes.append(f"{solver} solve failed ({err}); falling back to conjugate "
                              "gradients")
        solver = info.solver = "ichol"
    if solver == "ichol":
        try:
            precondition = ichol_preconditioner(matrix, discard_threshold)
        except ValueError as err:
            info.notes.append(f"incomplete Cholesky failed ({err}); using Jacobi")
            solver = info.solver = "jacobi"
    if solver == "jacobi":
        precondition = jacobi_preconditioner(matrix.diagonal())
    return conjugate_gradients(matrix, rhs, precondition, x0, rtol, max_iterations, info)


def soft_constraint_solve(laplacian, trimap_u8, unknown, lambda_value, preconditioner="jacobi",
                          rtol=1e-6, max_iterations=10000, info=None):
    """pymatting's formulation: ``(L + lambda C) a = lambda c`` over all H*W pixels (C = diagonal
    of the known pixels, c = the foreground pixels), as its ``estimate_alpha_*`` solve it.

    Args:
        laplacian: the whole-image Laplacian, a SciPy sparse matrix (solved with pymatting's
            ``make_linear_system`` and ``cg``, preconditioned by its ``ichol`` or ``jacobi``) or
            an object with ``matvec`` and ``diagonal`` (matrix-free: our conjugate gradients with
            the diagonal, as pymatting's ``estimate_alpha_lkm``).
        trimap_u8: uint8 H x W in {0, 128, 255}.
        unknown: flat indices of the unknown pixels.
        lambda_value: the penalty (pymatting's default 100).
    Returns the unknown pixels' values (float64, len(unknown)). Raises :class:`InputError` when
    pymatting's cg does not converge in ``max_iterations``.
    """
    info = info if info is not None else SolveInfo()
    if hasattr(laplacian, "matvec"):
        trimap = trimap_u8.ravel()
        penalty = lambda_value * (trimap != 128)
        rhs = lambda_value * (trimap == 255)
        x = conjugate_gradients(lambda v: laplacian.matvec(v) + penalty * v,
                                rhs.astype(np.float64),
                                jacobi_preconditioner(laplacian.diagonal + penalty), None, rtol,
                                max_iterations, info)
        info.solver = f"soft lambda={lambda_value:g} (jacobi, matrix-free)"
        return x[unknown]

    from pymatting.laplacian.laplacian import make_linear_system
    from pymatting.preconditioner.ichol import ichol
    from pymatting.preconditioner.jacobi import jacobi
    from pymatting.solver.cg import cg

    trimap01 = trimap_u8.astype(np.float64) / 255.0
    matrix, rhs = make_linear_system(laplacian, trimap01, lambda_value)
    precondition = ichol(matrix) if preconditioner == "ichol" else jacobi(matrix)
    counter = [0]

    def count(*_):
        counter[0] += 1

    try:
        x = cg(matrix, rhs, M=precondition, rtol=rtol, maxiter=max_iterations, callback=count)
        info.converged = True
    except ValueError:  # pymatting raises when maxiter is reached
        x = None
        info.converged = False
        info.notes.append(f"pymatting's cg did not converge in {max_iterations} iterations")
    info.solver, info.iterations = f"soft lambda={lambda_value:g} ({preconditioner})", counter[0]
    if x is None:
        raise InputError(f"soft-constraint solve did not converge in {max_iterations} "
                         f"iterations; raise max_iterations or use hard constraints "
                         f"(lambda_value: null)")
    return x[unknown]
