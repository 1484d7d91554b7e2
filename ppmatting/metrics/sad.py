"""SAD: sum of absolute differences over the unknown region."""
import numpy as np


class SAD:
    """SAD = sum over U of |p - g|, divided by 1000.

    p = prediction (forced to the trimap, 8-bit), g = ground truth, both as alphas in [0, 1];
    U = pixels with trimap == 128. Summed exactly on the integer grid, then divided by the grid's
    full scale and by 1000. Empty U gives 0.
    """

    name = "sad"

    def __call__(self, pair):
        pred, gt = pair.unknown_codes()
        return float(np.abs(pred - gt).sum()) / pair.gt_max / 1000.0
