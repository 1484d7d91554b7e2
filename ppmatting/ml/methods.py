"""Classical (non-learned) matting in the model zoo: closed-form, KNN, learning-based, large-kernel
and random-walk matting, with the zoo call shape ``alpha01 = model.predict(image01, trimap_u8)``.

Each method minimises ``a^T L a`` for its matting Laplacian ``L``, with the formulas and default
parameters of pymatting 1.1.16 (``pymatting/laplacian/*.py``: ``cf_laplacian(epsilon=1e-7,
radius=1)``, ``knn_laplacian(n_neighbors=[20, 10], distance_weights=[2.0, 0.1])``,
``lbdm_laplacian(epsilon=1e-7, radius=1)``, ``rw_laplacian(sigma=0.033, radius=1,
regularization=1e-8)``, ``lkm_laplacian(epsilon=1e-7, radius=10)``). Unlike pymatting, which
solves for every pixel with the known ones held by a soft penalty (``make_linear_system``,
lambda = 100; its closed-form excepted), the known pixels are hard constraints here: only
``L_UU a_U = -L_UK a_K`` is built and solved (``laplacians.py``, ``sparse_solve.py``).
``lambda_value`` selects pymatting's soft-constraint solution instead; random walk and large
kernel default to it, because there the two differ (see their docstrings).

The shared flow lives in :class:`ClassicalMatting`; a method supplies only its Laplacian over the
whole image (:meth:`~ClassicalMatting.full_laplacian`, for the soft constraints), reduced to the
unknown pixels (:meth:`~ClassicalMatting.reduced_system`, for the hard ones), its ``reach`` (how
far apart two coupled pixels can be, for the multifrontal direct solver) and a memory estimate.

Trimaps without a choice to make:

* no unknown pixel: the trimap itself (0 / 1) is returned;
* unknown pixels but only one kind of known pixel (no foreground, or no background): every
  Laplacian here has the constants in its null space, so the exact minimiser is that constant:
  alpha = 0 (only background) or 1 (only foreground) everywhere;
* no known pixel at all: :class:`InputError` (nothing to propagate).

Large images: before anything big is allocated, the memory the solve needs is estimated; over the
budget (``max_memory_gb``, default 70% of the machine's available memory) the call is refused with
the estimate and the ``solve_scale`` that fits. With ``solve_scale`` < 1 (or ``max_pixels``) the
matte is solved on a downscaled image and trimap and brought back to full resolution by a guided
filter on the full-resolution image (He & Sun, "Fast Guided Filter", 2015), then the known pixels
are forced.
"""
import math
import time

import cv2
import numpy as np

from ppmatting.cvlibs import manager
from ppmatting.ml import laplacians as lap
from ppmatting.ml import sparse_solve as ss
from ppmatting.ml.checks import (check_choice, check_non_negative, check_optional_positive,
                                 check_positive, check_unit_scale)
from ppmatting.models.base import ZooModel, check_matting_inputs, force_known
from ppmatting.utils.errors import ConfigError, InputError
from ppmatting.utils.memory import GIB, MEMORY_SHARE, default_budget_bytes, format_bytes

# scales offered in the "does not fit" message, largest first
SUGGESTED_SCALES = (0.75, 0.5, 0.35, 0.25, 0.18, 0.125, 0.09, 0.0625)
# bytes a pixel of every method's memory model: float64 image copy, trimap split (pos, masks),
# output alpha
PER_PIXEL_BASE = 80


# ---- helpers shared by the methods ---------------------------------------------------------------
def downscale_trimap(trimap_u8, size):
    """Trimap at ``size`` (W, H): a low-resolution pixel is foreground (background) only when the
    high-resolution pixels it covers all are; anything mixed is unknown."""
    fg = cv2.resize((trimap_u8 == 255).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    bg = cv2.resize((trimap_u8 == 0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    out = np.full(fg.shape, 128, np.uint8)
    out[fg > 0.999] = 255
    out[bg > 0.999] = 0
    return out


def _box(array, radius):
    return cv2.boxFilter(array, -1, (2 * radius + 1, 2 * radius + 1), normalize=True,
                         borderType=cv2.BORDER_REFLECT)


def guided_upsample(image_lo, alpha_lo, image_hi, radius=2, eps=1e-4):
    """Fast guided filter upsampling (He & Sun 2015) with a colour guide.

    Fits ``alpha ~ a . I + b`` in every (2r+1)^2 window of the low-resolution image, averages the
    coefficients, upsamples them bilinearly and applies them to the full-resolution image, so edges
    follow the full-resolution colours. Shapes: ``image_lo`` h x w x 3, ``alpha_lo`` h x w,
    ``image_hi`` H x W x 3 (float, [0, 1]); returns float32 H x W (not clipped).
    """
    guide = image_lo.astype(np.float32)
    alpha = alpha_lo.astype(np.float32)
    mean_i = _box(guide, radius)
    mean_p = _box(alpha, radius)
    cov_ip = _box(guide * alpha[:, :, None], radius) - mean_i * mean_p[:, :, None]
    var = np.empty(guide.shape[:2] + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            value = (_box(guide[:, :, i] * guide[:, :, j], radius)
                     - mean_i[:, :, i] * mean_i[:, :, j])
            var[:, :, i, j] = var[:, :, j, i] = value
    var += eps * np.eye(3, dtype=np.float32)
    coef_a = np.linalg.solve(var, cov_ip[..., None])[..., 0]
    coef_b = mean_p - (coef_a * mean_i).sum(axis=2)
    height, width = image_hi.shape[:2]
    mean_a = cv2.resize(_box(coef_a, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    mean_b = cv2.resize(_box(coef_b, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    return (mean_a * image_hi.astype(np.float32)).sum(axis=2) + mean_b


def smooth_guess(trimap_u8, split, sigma=8.0):
    """Warm start for iterative solvers: known alpha spread into the unknown region by normalised
    Gaussian convolution (0.5 where no known pixel is near). Returns float64 (n_unknown,)."""
    known = (trimap_u8 != 128).astype(np.float32)
    fg = (trimap_u8 == 255).astype(np.float32)
    num = cv2.GaussianBlur(fg, (0, 0), sigma)
    den = cv2.GaussianBlur(known, (0, 0), sigma)
    guess = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.5)
    return guess.ravel()[split.unknown].astype(np.float64)


def pixel_geometry(split, reach):
    """Rows of a reduced system on the pixel grid (for the multifrontal direct solver)."""
    ys, xs = np.divmod(split.unknown, split.width)
    return ss.Geometry(ys, xs, int(reach))


class ClassicalMatting(ZooModel):
    """Shared flow: validate, handle trivial trimaps, plan memory, solve (maybe downscaled) with
    hard or soft constraints, force the known pixels. A method supplies ``method`` (its name in
    messages), :meth:`full_laplacian`, :meth:`reduced_system`, :attr:`reach` and
    :meth:`estimate_bytes`.

    Common args:
        solver: 'auto' | 'direct' | 'superlu' | 'ichol' | 'jacobi' (see
            ``ppmatting.ml.sparse_solve``).
        rtol: conjugate-gradient stop ``|b - A x| <= rtol |b|`` (iterative solvers only).
        max_iterations: conjugate-gradient iteration limit.
        solve_scale: solve at this fraction of the resolution (1.0 = full), upsample guided by the
            image.
        max_pixels: if set, images with more pixels are solved at the scale that brings them to
            this many pixels (whichever of this and solve_scale is smaller).
        max_memory_gb: memory budget of one solve; None = 70% of MemAvailable.
        guide_radius, guide_eps: guided upsampling window radius (low-res pixels) and
            regularisation, used when the solve is downscaled.
        lambda_value: None = hard constraints (only the unknown pixels are solved); a number =
            pymatting's soft penalty on the known pixels (``make_linear_system``, pymatting's
            default 100), ``(L + lambda C) a = lambda c`` solved over all pixels with the
            preconditioner pymatting's ``estimate_alpha_*`` uses (:attr:`soft_preconditioner`).
    """

    is_network = False
    needs_trimap = True
    method = "classical matting"
    default_solver = "auto"
    #: preconditioner of the soft-constraint solve ('ichol' or 'jacobi'), as pymatting's
    #: ``estimate_alpha_*`` for the method
    soft_preconditioner = "jacobi"

    def __init__(self, solver=None, rtol=1e-6, max_iterations=10000, solve_scale=1.0,
                 max_pixels=None, max_memory_gb=None, guide_radius=2, guide_eps=1e-4,
                 lambda_value=None):
        self.solver = ss.check_solver(solver if solver is not None else self.default_solver)
        self.rtol = check_positive("rtol", rtol)
        self.max_iterations = check_positive("max_iterations", max_iterations, integer=True)
        self.solve_scale = check_unit_scale("solve_scale", solve_scale)
        self.max_pixels = check_optional_positive("max_pixels", max_pixels, integer=True)
        self.max_memory_gb = check_optional_positive("max_memory_gb", max_memory_gb)
        self.guide_radius = check_positive("guide_radius", guide_radius, integer=True)
        self.guide_eps = check_positive("guide_eps", guide_eps)
        self.lambda_value = check_optional_positive("lambda_value", lambda_value)
        self.last_info = {}

    # -- what a method supplies ----------------------------------------------------------------
    @property
    def reach(self):
        """Largest distance (in y and in x, pixels) between two pixels the Laplacian couples, or
        None when it couples far pixels (then the direct solver cannot use the pixel grid)."""
        return None

    def full_laplacian(self, image01):
        """The Laplacian over all H*W pixels: a SciPy sparse matrix or a
        :class:`~ppmatting.ml.laplacians.LaplacianOperator`. ``image01``: float64 H x W x 3."""
        raise NotImplementedError

    def reduced_system(self, image01, split):
        """The Laplacian reduced to the unknown pixels of ``split``: a
        :class:`~ppmatting.ml.laplacians.ReducedSystem` (sparse) or
        :class:`~ppmatting.ml.laplacians.ReducedOperator` (matrix-free)."""
        raise NotImplementedError

    def estimate_bytes(self, height, width, n_unknown):
        """Peak memory (bytes) of one full-resolution solve."""
        raise NotImplementedError

    # -- the solve -----------------------------------------------------------------------------
    def solve_unknown(self, image01, trimap_u8, split, info):
        """Alpha of the unknown pixels (float64, n_unknown): hard constraints, or pymatting's soft
        ones when ``lambda_value`` is set."""
        if self.lambda_value is not None:
            return ss.soft_constraint_solve(self.full_laplacian(image01), trimap_u8, split.unknown,
                                            self.lambda_value, self.soft_preconditioner,
                                            self.rtol, self.max_iterations, info)
        system = self.reduced_system(image01, split)
        x0 = smooth_guess(trimap_u8, split)
        if isinstance(system, lap.ReducedOperator):
            # nothing to factor: conjugate gradients with the diagonal
            info.solver = "jacobi (matrix-free)"
            return ss.conjugate_gradients(system.matvec, system.rhs,
                                          ss.jacobi_preconditioner(system.diagonal), x0,
                                          self.rtol, self.max_iterations, info)
        geometry = None if self.reach is None else pixel_geometry(split, self.reach)
        return ss.solve_system(system.matrix, system.rhs, self.solver, x0, self.rtol,
                               self.max_iterations, self._budget_bytes(), info=info,
                               geometry=geometry)

    # -- the zoo call --------------------------------------------------------------------------
    def predict(self, image01, trimap_u8):
        """H x W x 3 float RGB in [0, 1] + H x W uint8 trimap {0, 128, 255} -> float32 H x W
        alpha in [0, 1] (0 / 1 on the known pixels; clamped and forced once, by
        :func:`~ppmatting.models.base.force_known`)."""
        start = time.perf_counter()
        # validate and plan before anything image-sized is allocated (a 4K frame may be refused)
        image01, trimap_u8 = check_matting_inputs(image01, trimap_u8, self.method, convert=False)
        self.last_info = {"method": self.method, "scale": 1.0}
        trivial = self._trivial_alpha(trimap_u8)
        if trivial is not None:
            self.last_info["seconds"] = time.perf_counter() - start
            return trivial
        scale = self._plan_scale(*trimap_u8.shape, int(np.count_nonzero(trimap_u8 == 128)))
        image01 = np.ascontiguousarray(np.clip(image01, 0.0, 1.0), dtype=np.float64)
        if scale < 1.0:
            alpha01 = self._solve_downscaled(image01, trimap_u8, scale)
        else:
            alpha01 = self._solve_full(image01, trimap_u8)
        self.last_info["seconds"] = time.perf_counter() - start
        return force_known(alpha01, trimap_u8)

    def _trivial_alpha(self, trimap_u8):
        has_fg = bool((trimap_u8 == 255).any())
        has_bg = bool((trimap_u8 == 0).any())
        has_unknown = bool((trimap_u8 == 128).any())
        if not has_unknown:
            self.last_info["note"] = "no unknown pixels: the trimap is the matte"
            return (trimap_u8 == 255).astype(np.float32)
        if not has_fg and not has_bg:
            raise InputError(f"{self.method}: the trimap has no known pixels (all 128); mark "
                             f"some foreground (255) or background (0)")
        if not (has_fg and has_bg):
            value = 1.0 if has_fg else 0.0
            self.last_info["note"] = (f"trimap has no {'background' if has_fg else 'foreground'}"
                                      f" pixels: alpha = {value:g} everywhere (exact minimiser)")
            return np.full(trimap_u8.shape, value, np.float32)
        return None

    def _budget_bytes(self):
        if self.max_memory_gb is not None:
            return int(self.max_memory_gb * GIB)
        return default_budget_bytes()

    def _plan_scale(self, height, width, n_unknown):
        """Scale of the solve (1.0 = full); raises InputError when it would not fit."""
        scale = self.solve_scale
        if self.max_pixels is not None and height * width * scale * scale > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (height * width))
        budget = self._budget_bytes()
        need = self._estimate_at(height, width, n_unknown, scale)
        self.last_info.update(scale=scale, estimated_bytes=need, budget_bytes=budget)
        if need <= budget:
            return scale
        fits = [s for s in SUGGESTED_SCALES
                if s < scale and self._estimate_at(height, width, n_unknown, s) <= budget]
        hint = (f"set solve_scale: {fits[0]} (about "
                f"{format_bytes(self._estimate_at(height, width, n_unknown, fits[0]))}; "
                f"e.g. --opts model.solve_scale={fits[0]}) to solve at lower resolution and "
                f"upsample guided by the image" if fits else "use a smaller image")
        raise InputError(
            f"{self.method}: a {width}x{height} image with {n_unknown} unknown pixels"
            f"{'' if scale == 1.0 else f' at solve_scale {scale:.3g}'} needs about "
            f"{format_bytes(need)}, more than the {format_bytes(budget)} allowed "
            f"(max_memory_gb, default {int(MEMORY_SHARE * 100)}% of available memory); {hint}, "
            f"or narrow the trimap's unknown band")

    def _estimate_at(self, height, width, n_unknown, scale):
        if scale >= 1.0:
            return self.estimate_bytes(height, width, n_unknown)
        h = max(int(round(height * scale)), 1)
        w = max(int(round(width * scale)), 1)
        # the unknown band shrinks with the area, but mixed cells along its edges stay unknown
        n_lo = min(h * w, int(n_unknown * scale * scale * 1.3) + 2 * (h + w))
        # full-resolution input copies, the downscaled inputs, and the guided upsampling's
        # full-resolution coefficient maps (float32)
        upsample = height * width * (PER_PIXEL_BASE + 64) + h * w * 4 * 60
        return self.estimate_bytes(h, w, n_lo) + upsample

    def _solve_full(self, image01, trimap_u8):
        split = lap.split_trimap(trimap_u8)
        info = ss.SolveInfo()
        x = self.solve_unknown(image01, trimap_u8, split, info)
        self.last_info.update(solver=info.solver, iterations=info.iterations,
                              relative_residual=info.relative_residual,
                              converged=info.converged, notes=list(info.notes))
        alpha = (trimap_u8 == 255).astype(np.float64).ravel()
        alpha[split.unknown] = x
        # not clamped here: the one post-processing step (force_known) does that once
        return alpha.reshape(trimap_u8.shape).astype(np.float32)

    def _solve_downscaled(self, image01, trimap_u8, scale):
        height, width = trimap_u8.shape
        size = (max(int(round(width * scale)), 1), max(int(round(height * scale)), 1))
        image_lo = np.clip(cv2.resize(image01, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
        trimap_lo = downscale_trimap(trimap_u8, size)
        if min(size) < 3 or not ((trimap_lo == 0).any() and (trimap_lo == 255).any()):
            raise InputError(f"{self.method}: at solve_scale {scale:.3g} the {width}x{height} "
                             f"image becomes {size[0]}x{size[1]} and its trimap loses its "
                             f"foreground or background; use a larger solve_scale")
        # the guided filter fits its coefficients to a finished low-resolution matte
        alpha_lo = force_known(self._solve_full(image_lo, trimap_lo), trimap_lo)
        return guided_upsample(image_lo, alpha_lo, image01, self.guide_radius, self.guide_eps)

    def __repr__(self):
        return f"{type(self).__name__}(solver={self.solver!r}, solve_scale={self.solve_scale})"


@manager.MODELS.add_component
class ClosedFormMatting(ClassicalMatting):
    """Closed-form matting (Levin, Lischinski, Weiss, PAMI 2008), pymatting's ``cf_laplacian``.

    Args:
        epsilon: colour-line regularisation (pymatting default 1e-7; larger = smoother, faster).
        radius: window radius (1 -> 3x3 windows).
        laplacian_build: 'auto' = 'windowed' (only the windows touching unknown pixels, by a
            numba kernel: memory grows with the unknown region, not the image; 2-7x faster than
            pymatting's builder on the alphamatting photos) | 'whole_image' (pymatting's
            ``cf_laplacian`` over the whole image, then the unknown rows).
        lambda_value: None = hard constraints (default; what pymatting's ``estimate_alpha_cf``
            solves); a number = soft penalty over all pixels (see :class:`ClassicalMatting`).
        solver ... guide_eps: see :class:`ClassicalMatting`. ``auto`` = exact multifrontal
            Cholesky up to 500k unknown pixels, then incomplete-Cholesky CG (pymatting's method).
    """

    method = "closed-form matting"
    soft_preconditioner = "ichol"   # pymatting's estimate_alpha_cf / estimate_alpha_lbdm

    def __init__(self, epsilon=1e-7, radius=1, laplacian_build="auto", rtol=1e-7, **kwargs):
        super().__init__(rtol=rtol, **kwargs)
        self.epsilon = check_positive("epsilon", epsilon)
        self.radius = check_positive("radius", radius, integer=True)
        self.laplacian_build = check_choice("laplacian_build", laplacian_build,
                                            ("auto", "whole_image", "windowed"))

    @property
    def reach(self):
        return 2 * self.radius  # a window of radius r couples pixels up to 2r apart

    def _band(self):
        return (4 * self.radius + 1) ** 2

    def _whole_image_entries(self):
        return self._band()

    def _use_whole_image(self):
        return self.laplacian_build == "whole_image"

    def estimate_bytes(self, height, width, n_unknown):
        if self.lambda_value is not None:
            # the whole-image build, then ichol-preconditioned CG over every pixel
            pixels = height * width
            return (pixels * PER_PIXEL_BASE
                    + lap.whole_image_build_bytes(height, width, self._whole_image_entries())
                    + ss.ichol_bytes(pixels, pixels * self._band()))
        area = (2 * self.radius + 1) ** 2
        nnz = n_unknown * self._band()
        if self._use_whole_image():
            build = lap.whole_image_build_bytes(height, width, self._whole_image_entries())
        else:
            build = n_unknown * self._band() * 70 + 65536 * area * area * 8 * 4
        solver = ss.choose_solver(self.solver, n_unknown, nnz, self._budget_bytes())
        return height * width * PER_PIXEL_BASE + build + ss.solver_bytes(solver, n_unknown, nnz)

    def full_laplacian(self, image01):
        from pymatting.laplacian.cf_laplacian import cf_laplacian

        return cf_laplacian(image01, self.epsilon, self.radius)

    def reduced_system(self, image01, split):
        return lap.cf_reduced_system(image01, split, self.epsilon, self.radius,
                                     self._use_whole_image())


@manager.MODELS.add_component
class LearningBasedMatting(ClosedFormMatting):
    """Learning-based digital matting (Zheng & Kambhamettu, ICCV 2009), pymatting's
    ``lbdm_laplacian`` (linear kernel).

    Args:
        epsilon: ridge regularisation of the local linear fit (pymatting default 1e-7).
        radius: window radius.
        laplacian_build: as for :class:`ClosedFormMatting` ('windowed' is numpy here: 3.4x
            faster than pymatting's builder, which evaluates every window of the image, on a
            0.45 MP photo with 40% unknown pixels).
        lambda_value: None = hard constraints (default); a number = pymatting's soft penalty
            (``make_linear_system``, pymatting default 100) solved over all pixels.
        solver ... guide_eps: see :class:`ClassicalMatting`.
    """

    method = "learning-based matting"

    def estimate_bytes(self, height, width, n_unknown):
        if self.lambda_value is not None:
            # pymatting's full-image build: n x area^2 values and two index arrays, then CSR
            return height * width * ((2 * self.radius + 1) ** 4 * 16 * 3 + PER_PIXEL_BASE)
        return super().estimate_bytes(height, width, n_unknown)

    def _whole_image_entries(self):
        return (2 * self.radius + 1) ** 4

    def full_laplacian(self, image01):
        from pymatting.laplacian.lbdm_laplacian import lbdm_laplacian

        return lbdm_laplacian(image01, self.epsilon, self.radius)

    def reduced_system(self, image01, split):
        return lap.lbdm_reduced_system(image01, split, self.epsilon, self.radius,
                                       self._use_whole_image())


@manager.MODELS.add_component
class KNNMatting(ClassicalMatting):
    """KNN matting (Chen, Li, Tang, PAMI 2013), pymatting's ``knn_laplacian`` (binary kernel).

    Args:
        n_neighbors: neighbours per pass (pymatting default [20, 10]).
        distance_weights: weight of the pixel coordinates in each pass's features
            (pymatting default [2.0, 0.1]: a local pass and a nearly colour-only one).
        reverse_band: None (default, exact) or a distance in pixels: known pixels farther than
            this from the unknown region are not searched for unknown neighbours in the
            colour-only pass, an approximation that queries fewer pixels. Measured with 10 px:
            mean SAD -0.3% on the five alphamatting.com photos but +18% on a furry composite of
            the bundled val set, so it stays off by default.
        lambda_value: None = hard constraints; a number = pymatting's soft penalty (default
            there 100), solved over all pixels with pymatting's cg as ``estimate_alpha_knn``.
        solver: default 'jacobi' (conjugate gradients with the diagonal); the graph's long-range
            edges make factorisations fill in.
        rtol: default 1e-5 (the 8-bit matte no longer changes below it; measured).
    """

    method = "KNN matting"
    default_solver = "jacobi"

    def __init__(self, n_neighbors=(20, 10), distance_weights=(2.0, 0.1), reverse_band=None,
                 rtol=1e-5, **kwargs):
        super().__init__(rtol=rtol, **kwargs)
        if self.solver == "auto":
            # 'auto' picks a factorisation for small systems, which the KNN graph's long-range
            # edges fill in far beyond the 2-D estimate: conjugate gradients it is
            self.solver = "jacobi"
        if isinstance(n_neighbors, (int, float)):
            n_neighbors = [n_neighbors]
        if isinstance(distance_weights, (int, float)):
            distance_weights = [distance_weights]
        self.n_neighbors = [check_positive("n_neighbors", k, integer=True) for k in n_neighbors]
        self.distance_weights = [check_positive("distance_weights", d) for d in distance_weights]
        if len(self.n_neighbors) != len(self.distance_weights) or not self.n_neighbors:
            raise ConfigError(f"n_neighbors {self.n_neighbors} and distance_weights "
                              f"{self.distance_weights} must be non-empty and of equal length")
        self.reverse_band = check_optional_positive("reverse_band", reverse_band)

    def estimate_bytes(self, height, width, n_unknown):
        pixels = height * width
        k_total = sum(self.n_neighbors)
        if self.lambda_value is not None:
            return pixels * (PER_PIXEL_BASE + k_total * 2 * 8 * 6)
        # features + tree per pass, neighbour lists of queried pixels (worst case: all),
        # edges touching unknown pixels, the reduced matrix
        return (pixels * (PER_PIXEL_BASE + 200 + k_total * 12 * 2)
                + n_unknown * k_total * 2 * 8 * 8)

    def full_laplacian(self, image01):
        from pymatting.laplacian.knn_laplacian import knn_laplacian

        return knn_laplacian(image01, self.n_neighbors, self.distance_weights)

    def reduced_system(self, image01, split):
        return lap.knn_reduced_system(image01, split, self.n_neighbors, self.distance_weights,
                                      self.reverse_band)


@manager.MODELS.add_component
class RandomWalkMatting(ClassicalMatting):
    """Random-walk matting (Grady, Schiwietz, Aharon, Westermann, VIIP 2005), pymatting's
    ``rw_laplacian``.

    Args:
        sigma: colour scale of the edge weights. pymatting 1.1.16 accepts it but uses the
            constant 900 (about 1 / 0.033^2); kept for the same results, so it has no effect.
        radius: neighbourhood radius (1 -> 8 neighbours).
        regularization: added to the row-normalised Laplacian's diagonal (pymatting 1e-8).
        lambda_value: pymatting's soft penalty on the known pixels (default 100, pymatting's
            formulation and result, no faster than pymatting); None = hard constraints, solved on
            the unknown pixels only (a smaller system, but the matte differs and its mean SAD on
            the bundled val set is higher, docs/model_zoo.md: random-walk weights
            ``exp(-900 d^2)`` nearly cut some unknown pixels off, and the soft penalty lets the
            known ones give way).
        solver ... guide_eps: see :class:`ClassicalMatting`.
    """

    method = "random-walk matting"

    def __init__(self, sigma=0.033, radius=1, regularization=1e-8, lambda_value=100.0,
                 rtol=1e-7, **kwargs):
        super().__init__(rtol=rtol, lambda_value=lambda_value, **kwargs)
        self.sigma = check_positive("sigma", sigma)
        self.radius = check_positive("radius", radius, integer=True)
        self.regularization = check_non_negative("regularization", regularization)

    @property
    def reach(self):
        return self.radius

    def estimate_bytes(self, height, width, n_unknown):
        pixels = height * width
        edges = pixels * (2 * self.radius + 1) ** 2
        nnz = n_unknown * (2 * self.radius + 1) ** 2
        solver = ss.choose_solver(self.solver, n_unknown, nnz, self._budget_bytes())
        return (pixels * PER_PIXEL_BASE + edges * 16 * 4 + ss.solver_bytes(solver, n_unknown, nnz))

    def full_laplacian(self, image01):
        from pymatting.laplacian.rw_laplacian import rw_laplacian

        return rw_laplacian(image01, self.sigma, self.radius, self.regularization)

    def reduced_system(self, image01, split):
        return lap.rw_reduced_system(image01, split, self.sigma, self.radius,
                                     self.regularization)


@manager.MODELS.add_component
class LargeKernelMatting(ClassicalMatting):
    """Large-kernel matting (He, Sun, Tang, CVPR 2010), pymatting's matrix-free ``lkm_laplacian``:
    the closed-form Laplacian of (2r+1)^2 windows applied with box filters, never stored.
    Conjugate gradients with the diagonal as preconditioner (the only solver: nothing to factor).

    Args:
        epsilon: regularisation (pymatting default 1e-7).
        radius: window radius (pymatting default 10).
        lambda_value: pymatting's soft penalty (its ``estimate_alpha_lkm`` uses 100, the
            default here, for the same result); None = hard constraints on the unknown pixels
            (a higher mean SAD on the bundled val set, docs/model_zoo.md: with 21x21 windows the
            soft penalty lets known pixels near the boundary give way, which these mattes
            favour).
        rtol, max_iterations, solve_scale ...: see :class:`ClassicalMatting`.
    """

    method = "large-kernel matting"
    default_solver = "jacobi"

    def __init__(self, epsilon=1e-7, radius=10, lambda_value=100.0, rtol=1e-7, **kwargs):
        super().__init__(rtol=rtol, lambda_value=lambda_value, **kwargs)
        if self.solver not in ("auto", "jacobi"):
            raise ConfigError(f"solver: large-kernel matting is matrix-free and only supports "
                              f"'jacobi', got '{self.solver}'")
        self.epsilon = check_positive("epsilon", epsilon)
        self.radius = check_positive("radius", radius, integer=True)

    def estimate_bytes(self, height, width, n_unknown):
        # means, covariances, their inverses and per-matvec temporaries: ~80 doubles a pixel
        return height * width * (PER_PIXEL_BASE + 80 * 8) + n_unknown * 8 * 8

    def full_laplacian(self, image01):
        return lap.lkm_operator(image01, self.epsilon, self.radius)

    def reduced_system(self, image01, split):
        return lap.lkm_reduced_operator(image01, split, self.epsilon, self.radius)
