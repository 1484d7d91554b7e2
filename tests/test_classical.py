"""Classical matting in the zoo: accuracy on synthetic scenes with a known alpha, agreement of the
reduced (hard-constraint) systems with pymatting's whole-image Laplacians, trimap edge cases,
memory refusal, downscaled solves, and every configs/ml config through Config, tools/val.py and
tools/predict.py."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from ppmatting.cvlibs import manager
from ppmatting.ml import methods as classical
from ppmatting.ml import laplacians as lap
from ppmatting.ml import sparse_solve as ss
from ppmatting.models.base import check_matting_inputs, force_known
from ppmatting.utils.errors import ConfigError, InputError
from ppmatting.utils.io import read_alpha, write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "ml", "*.yml")))


def scene(height=48, width=64, seed=0):
    """A reddish textured subject with a soft, wavy edge over a bluish gradient background:
    ``image = alpha fg + (1 - alpha) bg`` exactly. Returns image01 (float64), alpha01, trimap_u8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    edge = 0.45 * width + 3.0 * np.sin(yy / 4.0)
    alpha = np.clip((xx - edge) / 7.0 + 0.5, 0.0, 1.0)
    fg = np.stack([0.85 + 0.05 * np.sin(xx / 3), 0.35 + 0.1 * np.cos(yy / 5), 0.2 + 0 * xx], axis=2)
    bg = np.stack([0.15 + 0.1 * yy / height, 0.25 + 0 * xx, 0.75 - 0.15 * xx / width], axis=2)
    fg = np.clip(fg + rng.normal(0, 0.01, fg.shape), 0, 1)
    image = alpha[:, :, None] * fg + (1 - alpha[:, :, None]) * bg
    trimap = np.full((height, width), 128, np.uint8)
    dist_bg = xx - edge
    trimap[dist_bg < -8] = 0
    trimap[dist_bg > 8] = 255
    return image, alpha.astype(np.float32), trimap


def unknown_mae(pred, alpha, trimap):
    return float(np.abs(pred - alpha)[trimap == 128].mean())


def hard_solution(laplacian, trimap):
    """Reference: pymatting's whole-image Laplacian, known pixels held exactly, dense solve."""
    dense = laplacian.toarray() if hasattr(laplacian, "toarray") else laplacian
    unknown = trimap.ravel() == 128
    fg = (trimap.ravel() == 255).astype(np.float64)
    rhs = -dense[np.ix_(unknown, ~unknown)] @ fg[~unknown]
    return np.linalg.solve(dense[np.ix_(unknown, unknown)], rhs)


# ---- accuracy on a known alpha -------------------------------------------------------------------
@pytest.mark.parametrize("model, bound", [
    (classical.ClosedFormMatting(), 0.03),
    (classical.KNNMatting(), 0.08),
    (classical.LearningBasedMatting(), 0.03),
    (classical.RandomWalkMatting(), 0.12),
    (classical.RandomWalkMatting(lambda_value=None), 0.12),
    (classical.LargeKernelMatting(radius=3), 0.06),
])
def test_each_method_recovers_a_known_alpha(model, bound):
    image, alpha, trimap = scene()
    pred = model.predict(image, trimap)
    assert pred.dtype == np.float32 and pred.shape == trimap.shape
    assert pred.min() >= 0.0 and pred.max() <= 1.0
    assert (pred[trimap == 0] == 0).all() and (pred[trimap == 255] == 1).all()
    error = unknown_mae(pred, alpha, trimap)
    # a constant 0.5 in the band would be off by ~0.3: the bound is far below that
    assert error < bound, (type(model).__name__, error)


# ---- reduced systems against pymatting's whole-image Laplacians ---------------------------------
def test_closed_form_matches_pymatting_estimate_alpha_cf():
    from pymatting import estimate_alpha_cf

    image, _, trimap = scene(40, 48, seed=1)
    theirs = np.clip(estimate_alpha_cf(image, trimap / 255.0), 0, 1)
    for build in ("windowed", "whole_image"):
        ours = classical.ClosedFormMatting(laplacian_build=build).predict(image, trimap)
        assert np.abs(ours - theirs).max() < 1e-4, build


@pytest.mark.parametrize("name", ["cf", "lbdm", "knn", "rw"])
def test_reduced_system_equals_the_full_laplacian_restricted(name):
    from pymatting import cf_laplacian, knn_laplacian, lbdm_laplacian, rw_laplacian

    image, _, trimap = scene(40, 44, seed=2)
    if name == "knn":
        # the smooth background has exactly tied neighbour distances, which pymatting's tree and
        # our ring search break differently (test_knn_search_is_exact covers ties): add noise
        noise = np.random.default_rng(7).normal(0, 0.003, image.shape)
        image = np.clip(image + noise, 0, 1)
    split = lap.split_trimap(trimap)
    full, reduced = {
        "cf": (lambda: cf_laplacian(image), lambda: lap.cf_reduced_system(image, split)),
        "lbdm": (lambda: lbdm_laplacian(image), lambda: lap.lbdm_reduced_system(image, split)),
        "knn": (lambda: knn_laplacian(image), lambda: lap.knn_reduced_system(image, split)),
        "rw": (lambda: rw_laplacian(image), lambda: lap.rw_reduced_system(image, split)),
    }[name]
    system = reduced()
    matrix = system.matrix.toarray()
    assert np.abs(matrix - matrix.T).max() < 1e-9  # symmetric: conjugate gradients apply
    ours = np.linalg.solve(matrix, system.rhs)
    # ours solves pymatting's own hard-constraint equations L_UU a_U = -L_UK a_K (KNN's and
    # random walk's rows are row-normalised there, so compare residuals, not matrices)
    dense = full().toarray()
    unknown = trimap.ravel() == 128
    fg = (trimap.ravel() == 255).astype(np.float64)
    residual = (dense[np.ix_(unknown, unknown)] @ ours
                + dense[np.ix_(unknown, ~unknown)] @ fg[~unknown])
    assert np.abs(residual).max() < 1e-9, name
    if name in ("cf", "lbdm"):  # well conditioned enough to compare solutions too
        assert np.abs(ours - hard_solution(dense, trimap)).max() < 1e-6, name


@pytest.mark.parametrize("k, weight, shape", [(20, 2.0, (37, 45)), (10, 0.1, (37, 45)),
                                              (5, 0.7, (37, 45)), (20, 2.0, (2, 300)),
                                              (7, 3.0, (300, 1))])
def test_knn_search_is_exact(k, weight, shape):
    """Both passes find exact nearest neighbours: the same sorted distances as pymatting's k-d
    tree for every pixel (the neighbours themselves may differ only among tied distances).
    Thin images clip the local pass's rings at the border."""
    from pymatting.util.kdtree import KDTree

    height, width = shape
    image = scene(max(height, 8), max(width, 8), seed=5)[0][:height, :width]  # ties included
    features = lap.knn_features(np.ascontiguousarray(image), weight)
    query = np.arange(features.shape[0])
    ours = lap.knn_search(features, query, k, weight, height, width)
    _, theirs = KDTree(features).query(features, k)

    def sorted_distances(neighbours):
        diff = features[:, None, :].astype(np.float64) - features[neighbours]
        return np.sort((diff ** 2).sum(axis=2), axis=1)

    assert ours.shape == (features.shape[0], k)
    assert (ours == query[:, None]).any(axis=1).all()  # each pixel lists itself
    assert (np.sort(ours, axis=1)[:, 1:] != np.sort(ours, axis=1)[:, :-1]).all()  # no repeats
    assert np.abs(sorted_distances(ours) - sorted_distances(theirs)).max() < 1e-6


def test_large_kernel_reduced_operator_equals_dense_restriction():
    from pymatting.laplacian.lkm_laplacian import lkm_laplacian

    image, _, trimap = scene(30, 34, seed=3)
    n = trimap.size
    apply_l, _ = lkm_laplacian(image, radius=3)
    dense = np.stack([apply_l(e) for e in np.eye(n)], axis=1)
    reference = hard_solution(dense, trimap)
    model = classical.LargeKernelMatting(radius=3, lambda_value=None, rtol=1e-10)
    ours = model.predict(image, trimap)[trimap == 128]
    assert np.abs(ours - np.clip(reference, 0, 1)).max() < 1e-4


@pytest.mark.parametrize("solver", ["direct", "superlu", "ichol", "jacobi"])
def test_solvers_agree(solver):
    image, _, trimap = scene(40, 48, seed=4)
    reference = classical.ClosedFormMatting(epsilon=1e-5, solver="superlu").predict(image, trimap)
    model = classical.ClosedFormMatting(epsilon=1e-5, solver=solver, rtol=1e-10,
                                        max_iterations=20000)
    assert np.abs(model.predict(image, trimap) - reference).max() < 1e-3
    # 'direct' on a window Laplacian is the multifrontal Cholesky, with no fallback taken
    expected = "direct (multifrontal)" if solver == "direct" else solver
    assert model.last_info["solver"] == expected, model.last_info


def test_knn_soft_constraints_reproduce_pymatting():
    from pymatting import estimate_alpha_knn

    image, _, trimap = scene(40, 48, seed=5)
    theirs = np.clip(estimate_alpha_knn(image, trimap / 255.0), 0, 1)
    soft = classical.KNNMatting(lambda_value=100.0, rtol=1e-7).predict(image, trimap)
    hard = classical.KNNMatting().predict(image, trimap)
    unknown = trimap == 128
    assert np.abs(soft - theirs)[unknown].max() < 1e-4
    # hard and soft constraints are close on a clean scene (pymatting's lambda is large)
    assert np.abs(hard - theirs)[unknown].mean() < 0.01


def test_knn_query_pruning_is_exact():
    image, _, trimap = scene(40, 48, seed=6)
    split = lap.split_trimap(trimap)
    features = lap.knn_features(image, 2.0)
    query = lap.knn_query_pixels(split, features, 20, 2.0)
    assert query.size < trimap.size  # something was pruned
    from pymatting.util.kdtree import KDTree

    _, neighbours = KDTree(features).query(features, 20)
    lists_unknown = split.is_unknown[neighbours].any(axis=1)
    assert np.isin(np.flatnonzero(lists_unknown), query).all()


# ---- trimap edge cases and bad input -------------------------------------------------------------
@pytest.mark.parametrize("model_class", [classical.ClosedFormMatting, classical.KNNMatting])
def test_trimap_edge_cases(model_class):
    image, _, trimap = scene(40, 40)
    model = model_class()
    no_unknown = np.where(trimap == 128, 255, trimap).astype(np.uint8)
    assert np.array_equal(model.predict(image, no_unknown), no_unknown / 255.0)
    only_bg = np.where(trimap == 255, 128, trimap).astype(np.uint8)
    assert (model.predict(image, only_bg) == 0).all()
    assert "no foreground" in model.last_info["note"]
    only_fg = np.where(trimap == 0, 128, trimap).astype(np.uint8)
    assert (model.predict(image, only_fg) == 1).all()
    with pytest.raises(InputError, match="no known pixels"):
        model.predict(image, np.full((40, 40), 128, np.uint8))


def test_bad_inputs_give_one_line_errors():
    image, _, trimap = scene(40, 40)
    model = classical.ClosedFormMatting()
    with pytest.raises(InputError, match="0-255"):
        model.predict(image * 255.0, trimap)
    with pytest.raises(InputError, match="holds value 100"):
        model.predict(image, np.where(trimap == 128, 100, trimap).astype(np.uint8))
    with pytest.raises(InputError, match="WxH"):
        model.predict(image, trimap[:30])
    with pytest.raises(InputError, match="H x W x 3"):
        model.predict(image[:, :, 0], trimap)
    with pytest.raises(InputError, match="smaller than one"):
        model.predict(image[:2, :2], np.array([[0, 128], [128, 255]], np.uint8))
    with pytest.raises(ConfigError, match="solver"):
        classical.ClosedFormMatting(solver="magic")
    with pytest.raises(ConfigError, match="solve_scale"):
        classical.KNNMatting(solve_scale=2)
    with pytest.raises(ConfigError, match="n_neighbors"):
        classical.KNNMatting(n_neighbors=[20, 10], distance_weights=[2.0])


def test_force_known_and_input_check():
    trimap = np.array([[0, 128, 255]], np.uint8)
    out = force_known(np.array([[0.4, 1.7, 0.2]]), trimap)
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 1.0, 1.0]]
    image, checked = check_matting_inputs(np.zeros((1, 3, 3), np.float32), trimap)
    assert image.dtype == np.float64 and checked is trimap


# ---- large inputs: refused before allocating, or solved downscaled ---------------------------
def test_too_large_is_refused_with_the_estimate_and_the_option_that_fits():
    # a 4K frame with a wide unknown band; nothing big is allocated before the refusal
    height, width = 2160, 3840
    image = np.zeros((height, width, 3), np.float32)
    trimap = np.zeros((height, width), np.uint8)
    trimap[:, 2000:] = 255
    trimap[:, 1000:2300] = 128          # 2.8M unknown pixels
    n_unknown = int((trimap == 128).sum())
    probe = classical.ClosedFormMatting(max_memory_gb=1.0)
    budget_gb = 1.05 * probe._estimate_at(height, width, n_unknown, 0.35) / 1024 ** 3
    model = classical.ClosedFormMatting(max_memory_gb=budget_gb)
    assert model._estimate_at(height, width, n_unknown, 1.0) > budget_gb * 1024 ** 3
    with pytest.raises(InputError) as err:
        model.predict(image, trimap)
    message = str(err.value)
    assert "3840x2160" in message and "GiB" in message and "solve_scale" in message
    scale = float(message.split("--opts model.solve_scale=")[1].split(")")[0])
    assert scale <= 0.75
    assert model._estimate_at(height, width, n_unknown, scale) <= budget_gb * 1024 ** 3


def test_downscaled_solve_is_close_to_the_full_one():
    image, alpha, trimap = scene(96, 128, seed=7)
    full = classical.ClosedFormMatting().predict(image, trimap)
    half_model = classical.ClosedFormMatting(solve_scale=0.5)
    half = half_model.predict(image, trimap)
    assert half_model.last_info["scale"] == 0.5
    assert half.shape == trimap.shape
    assert unknown_mae(half, alpha, trimap) < 0.05
    assert unknown_mae(half, full, trimap) < 0.05
    by_pixels = classical.ClosedFormMatting(max_pixels=96 * 128 // 4)
    by_pixels.predict(image, trimap)
    assert abs(by_pixels.last_info["scale"] - 0.5) < 1e-6


def test_guided_upsample_follows_the_full_resolution_edge():
    yy, xx = np.mgrid[:64, :64]
    image = np.repeat((xx >= 33)[:, :, None], 3, axis=2).astype(np.float32)
    import cv2

    small = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    alpha_small = small[:, :, 0]
    up = classical.guided_upsample(small, alpha_small, image)
    assert np.abs(up - image[:, :, 0]).mean() < 0.02


# ---- from configs, through the registry and the tools -------------------------------------------
def test_every_method_is_registered_with_a_config():
    types = set()
    for path in CONFIGS:
        from ppmatting.cvlibs.config import Config

        model = Config(path).model
        assert model.is_network is False and model.needs_trimap is True
        types.add(type(model).__name__)
    expected = {"ClosedFormMatting", "KNNMatting", "LearningBasedMatting", "RandomWalkMatting",
                "LargeKernelMatting"}
    assert types == expected
    assert expected <= set(manager.MODELS.names())


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classical_set")
    image, alpha, trimap = scene(40, 56, seed=8)
    write_image(folder / "img.png", image)
    write_image(folder / "alpha.png", alpha)
    write_image(folder / "trimap.png", trimap)
    (folder / "val.txt").write_text("img.png alpha.png trimap.png\n", encoding="utf-8")
    return folder


class _Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def _run(args, cwd, subprocess_call):
    """Run a tool as a user would (a subprocess), or in this process through its ``main(argv)``
    (same code path, without paying Paddle's import again) to keep the suite quick."""
    if subprocess_call:
        out = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                             timeout=300)
        return _Result(out.returncode, out.stderr)
    from script_loader import load_script

    tool = load_script(os.path.relpath(args[0], ROOT))
    old_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        code = tool.main(args[1:])
    except SystemExit as exit_:
        code = exit_.code
    finally:
        os.chdir(old_cwd)
    return _Result(code or 0, "")


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_tools_val_and_predict_run_each_config(config, tiny_set, tmp_path):
    opts = ["--opts", "model.radius=3"] if "large_kernel" in config else []
    as_user = "closed_form" in config  # one config through real subprocesses, all in-process
    val = _run([os.path.join(ROOT, "tools", "val.py"), "--config", config,
                "--dataset_root", str(tiny_set), "--val_file", "val.txt",
                "--save_dir", str(tmp_path / "val"), "--quiet"] + opts, tmp_path, as_user)
    assert val.returncode == 0, val.stderr[-2000:]
    summary = (tmp_path / "val" / "summary.json").read_text(encoding="utf-8")
    import json

    sad = json.loads(summary)["metrics"]["sad"]
    assert sad < 0.15, sad  # 0.15 ~ 1/4 of a 0.5-constant guess over this band
    pred = _run([os.path.join(ROOT, "tools", "predict.py"), "--config", config,
                 "--image_path", str(tiny_set / "img.png"),
                 "--trimap_path", str(tiny_set / "trimap.png"),
                 "--save_dir", str(tmp_path / "pred"), "--quiet"] + opts, tmp_path, as_user)
    assert pred.returncode == 0, pred.stderr[-2000:]
    alpha = read_alpha(tmp_path / "pred" / "img_alpha.png")
    assert alpha.shape == (40, 56)
    _, truth, trimap = scene(40, 56, seed=8)
    assert unknown_mae(alpha, truth, trimap) < 0.12


def test_import_ppmatting_does_not_load_numba():
    code = "import sys, ppmatting; print('numba' in sys.modules, 'pymatting' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_memory_estimates_grow_and_choose_solvers():
    assert ss.direct_bytes(2_000_000, 50_000_000) > ss.ichol_bytes(2_000_000, 50_000_000) > \
        ss.cg_bytes(2_000_000, 50_000_000)
    assert ss.choose_solver("auto", 1000, 25000, 10 ** 12) == "direct"
    assert ss.choose_solver("auto", 2_000_000, 50_000_000, 10 ** 12) == "ichol"
    assert ss.choose_solver("auto", 2_000_000, 50_000_000, 10 ** 8) == "jacobi"
