"""MSE: mean squared error over the unknown region."""
import numpy as np


class MSE:
    """MSE = sum over U of (p - g)^2, divided by |U| (the number of unknown pixels).

    p = prediction (forced to the trimap, 8-bit), g = ground truth, both as alphas in [0, 1];
    U = pixels with trimap == 128. Reported as is (no x1000 scaling; DIM's stage-3 model scores
    about 0.015). Summed exactly on the integer grid. Empty U gives 0.
    """

    name = "mse"

    def __call__(self, pair):
        pred, gt = pair.unknown_codes()
        if pred.size == 0:
            return 0.0
        diff = pred - gt
        # int64 is exact here: at most 65535^2 per pixel, ~4.3e9 * |U| < 9.2e18 for |U| < 2e9.
        return float(np.dot(diff, diff)) / (float(pair.gt_max) ** 2) / pred.size
