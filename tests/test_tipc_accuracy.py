"""test_tipc/check_accuracy.py tells a trained DIM from an untrained one and from a constant alpha.

The lite validation data is made into a temporary folder (test_tipc/make_lite_data.py --out), and
the untrained network is the one a seeded lite training starts from; both must fail the check
that the stored SAD of the lite training passes.
"""
import os

import numpy as np
import pytest

from ppmatting.core.val import evaluate
from ppmatting.cvlibs.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tipc_script(name):
    from script_loader import load_script

    return load_script(f"test_tipc/{name}.py")


CHECK = load_tipc_script("check_accuracy")
MODE = "lite_train_lite_infer"


class ConstantAlpha:
    """A 'model' that answers 0.5 everywhere (the known regions are forced by the scoring)."""

    def predict(self, image01, trimap_u8):
        return np.full(trimap_u8.shape, 0.5, np.float32)


@pytest.fixture(scope="module")
def lite_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("lite")
    load_tipc_script("make_lite_data").main(["--out", str(out)])
    return str(out)


@pytest.mark.parametrize("model", ["dim_vgg16", "dim_vgg16_paddleseg"])
def test_untrained_and_constant_alphas_fail_where_the_stored_run_passes(lite_root, model):
    tipc = os.path.join(ROOT, "test_tipc", "configs", model, "train_infer_python.txt")
    config = os.path.join(ROOT, CHECK.tipc_value(tipc, "accuracy_config"))
    opts = [f"val_dataset.dataset_root={lite_root}"]
    expected = float(CHECK.tipc_value(tipc, "expected_val_sad", MODE))
    rel_tol = float(CHECK.tipc_value(tipc, "val_sad_rel_tol"))
    min_gain = float(CHECK.tipc_value(tipc, "min_val_sad_gain"))
    untrained = CHECK.untrained_sad(config, CHECK.tipc_value(tipc, "train_seed"), opts)
    constant = evaluate(ConstantAlpha(), Config(config, opts=opts).val_dataset,
                        progress=False)["metrics"]["sad"]

    assert CHECK.judge_sad(expected, expected, rel_tol, untrained, min_gain)[0]
    verdict, lines = CHECK.judge_sad(untrained, expected, rel_tol, untrained, min_gain)
    assert not verdict and "NOT TRAINED ENOUGH" in lines[1]
    verdict, lines = CHECK.judge_sad(constant, expected, rel_tol, untrained, min_gain)
    assert not verdict and "OUT OF RANGE" in lines[0]
    # the tolerance alone already rejects both (the old +-25% accepted both for DIM)
    assert abs(untrained / expected - 1) > rel_tol and abs(constant / expected - 1) > rel_tol
