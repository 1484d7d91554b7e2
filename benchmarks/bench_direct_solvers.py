"""Exact solvers of the closed-form matting system: SciPy's SuperLU against ppmatting's
multifrontal Cholesky (geometric nested dissection), on the same reduced systems.

For each image of ../shared/data/alphamatting-dev (and the bundled val set) it builds the
closed-form system over the unknown pixels (pymatting's defaults: epsilon 1e-7, radius 1) and
prints, per solver, the seconds of the factorisation (float32, the precision both use as the
preconditioner of the exact solve), the seconds of the whole exact solve (factor + refinement to
rtol 1e-7) and the factor's entries per unknown pixel. Fastest of ``--repeat`` runs.

Usage: python benchmarks/bench_direct_solvers.py [--repeat N]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import scipy.sparse.linalg  # noqa: E402

from _timing import best_time  # noqa: E402
from bench_classical import load_shared_set, load_val_set  # noqa: E402
from ppmatting.ml import laplacians as lap  # noqa: E402
from ppmatting.ml import multifrontal  # noqa: E402
from ppmatting.ml import sparse_solve as ss  # noqa: E402
from ppmatting.ml.methods import pixel_geometry  # noqa: E402
from ppmatting.utils.io import read_image, read_trimap  # noqa: E402


def superlu_factor(matrix):
    return scipy.sparse.linalg.splu(matrix.astype(np.float32).tocsc(),
                                    permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                    options={"SymmetricMode": True})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = load_val_set() + load_shared_set()
    print(f"{'image':<14} {'unknown':>8} {'SuperLU factor':>15} {'multifrontal factor':>20} "
          f"{'speed-up':>9} {'SuperLU solve':>14} {'multifrontal solve':>19} "
          f"{'LU entries/px':>14} {'L entries/px':>13}")
    warm = True
    for name, image_path, _, trimap_path in items:
        trimap = read_trimap(trimap_path)
        if not ((trimap == 0).any() and (trimap == 255).any() and (trimap == 128).any()):
            continue
        image = read_image(image_path).astype(np.float64)
        split = lap.split_trimap(trimap)
        system = lap.cf_reduced_system(image, split)
        geometry = pixel_geometry(split, 2)
        if warm:  # numba compile / cache load outside the timings
            multifrontal.MultifrontalCholesky(system.matrix, geometry.ys, geometry.xs, 2,
                                              np.float32)
            warm = False
        t_lu, lu = best_time(lambda: superlu_factor(system.matrix), args.repeat)
        t_mf, chol = best_time(lambda: multifrontal.MultifrontalCholesky(
            system.matrix, geometry.ys, geometry.xs, 2, np.float32), args.repeat)
        s_lu, _ = best_time(lambda: ss.superlu_solve(system.matrix, system.rhs), args.repeat)
        s_mf, _ = best_time(lambda: ss.multifrontal_solve(system.matrix, system.rhs, geometry),
                          args.repeat)
        n = split.n_unknown
        print(f"{name:<14} {n:>8} {t_lu:>14.3f}s {t_mf:>19.3f}s {t_lu / t_mf:>8.2f}x "
              f"{s_lu:>13.3f}s {s_mf:>18.3f}s {(lu.L.nnz + lu.U.nnz) / n:>14.0f} "
              f"{chol.factor_entries / n:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
