"""What every classical method shares lives in ``ClassicalMatting``: a method supplies only its
Laplacian (over the whole image and reduced to the unknown pixels), its reach and a memory
estimate, and gets the hard- and soft-constraint solves, the lambda_value check, trivial trimaps,
the memory plan and the downscaled solve."""
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from ppmatting.ml import laplacians as lap
from ppmatting.ml import methods as classical
from ppmatting.utils.errors import ConfigError


class GridMatting(classical.ClassicalMatting):
    """A made-up method for the contract: uniform 4-neighbour graph Laplacian (a harmonic
    interpolation of the known alpha), built with SciPy only."""

    method = "grid matting"

    @property
    def reach(self):
        return 1

    def full_laplacian(self, image01):
        height, width = image01.shape[:2]
        index = np.arange(height * width).reshape(height, width)
        rows = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
        cols = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
        weights = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, cols)),
                                          shape=(height * width,) * 2)
        weights = (weights + weights.T).tocsr()
        return (scipy.sparse.diags(np.asarray(weights.sum(axis=1)).ravel()) - weights).tocsr()

    def reduced_system(self, image01, split):
        return lap.reduce_full_laplacian(self.full_laplacian(image01), split)

    def estimate_bytes(self, height, width, n_unknown):
        return height * width * 200


def ramp_scene(height=24, width=30):
    trimap = np.full((height, width), 128, np.uint8)
    trimap[:, :5] = 0
    trimap[:, -5:] = 255
    return np.full((height, width, 3), 0.5), trimap


def test_a_method_is_its_laplacian():
    image, trimap = ramp_scene()
    hard = GridMatting().predict(image, trimap)
    # harmonic between columns 4 (0) and width - 5 (1): a linear ramp, the same on every row
    expected = np.clip((np.arange(30) - 4) / (25 - 4), 0, 1)
    assert np.abs(hard - expected[None, :]).max() < 1e-5
    soft = GridMatting(lambda_value=100.0).predict(image, trimap)
    assert np.abs(soft - hard)[trimap == 128].max() < 0.05  # the penalty lets the known give way
    assert np.abs(soft - hard)[trimap == 128].max() > 1e-4
    model = GridMatting(solve_scale=0.5)
    model.predict(image, trimap)
    assert model.last_info["scale"] == 0.5


def test_closed_form_gets_the_soft_constraints_from_the_base_class():
    from pymatting import cf_laplacian
    from pymatting.laplacian.laplacian import make_linear_system

    rng = np.random.default_rng(3)
    image, trimap = ramp_scene()
    image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1)
    matrix, rhs = make_linear_system(cf_laplacian(image), trimap / 255.0, 50.0)
    exact = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs).reshape(trimap.shape)
    model = classical.ClosedFormMatting(lambda_value=50.0, rtol=1e-10)
    ours = model.predict(image, trimap)
    unknown = trimap == 128
    assert np.abs(ours - np.clip(exact, 0, 1))[unknown].max() < 1e-4
    assert model.last_info["solver"] == "soft lambda=50 (ichol)"


@pytest.mark.parametrize("model_class", [classical.ClosedFormMatting, classical.KNNMatting,
                                         classical.LearningBasedMatting,
                                         classical.RandomWalkMatting,
                                         classical.LargeKernelMatting, GridMatting])
def test_one_lambda_value_check_for_every_method(model_class):
    for bad in (0, -1.0, "100", True):
        with pytest.raises(ConfigError, match="lambda_value: must be a positive number"):
            model_class(lambda_value=bad)
    assert model_class(lambda_value=None).lambda_value is None
    assert model_class(lambda_value=20).lambda_value == 20.0


def test_reach_is_how_far_the_laplacian_couples_pixels():
    assert classical.ClosedFormMatting(radius=2).reach == 4      # two windows of radius 2
    assert classical.LearningBasedMatting(radius=1).reach == 2
    assert classical.RandomWalkMatting(radius=3).reach == 3      # one neighbourhood
    assert classical.KNNMatting().reach is None                  # neighbours anywhere
    assert classical.LargeKernelMatting().reach is None          # matrix-free: nothing to factor
