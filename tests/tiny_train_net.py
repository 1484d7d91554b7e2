"""A DIM-shaped network small enough for training tests, and helpers to run tools/train.py.

``TrainTestNet`` has DIM's call shape and output keys and parts named backbone / decoder / refiner
(a batch norm in the backbone), so a training run takes about a second; the losses, frozen parts,
optimiser and stages come from the real configs/dim files.
"""
import os
import textwrap

import numpy as np
import paddle
import paddle.nn as nn

from ppmatting.cvlibs import manager
from ppmatting.models.dim import postprocess, preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_TOOL = os.path.join(ROOT, "tools", "train.py")
DIM_CONFIGS = os.path.join(ROOT, "configs", "dim")


class _TinyRefiner(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 1, 3, padding=1)

    def forward(self, img, alpha, alpha_logit):
        return paddle.nn.functional.sigmoid(alpha_logit + self.conv(paddle.concat([img, alpha], 1)))


class TrainTestNet(nn.Layer):
    """forward(img N x 3 x H x W, trimap N x 1 x H x W raw) -> {alpha_pred, [alpha_refined], alpha}.

    ``nan_at``: from that training call on, the output is NaN (to stop a run as a crash would).
    ``pretrained``: a state dict file to load (``allow_missing_refiner``: it may lack the
    refiner's tensors, as a stage-1 result does), like DIM's ``model.pretrained``.
    """

    is_network = True
    needs_trimap = True

    def __init__(self, refiner=True, nan_at=0, pretrained=None, allow_missing_refiner=False):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2D(4, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU())
        self.decoder = nn.Conv2D(8, 1, 3, padding=1)
        self.refiner = _TinyRefiner() if refiner else None
        self.nan_at = int(nan_at)
        self.calls = 0
        if pretrained:
            from ppmatting.weights.files import read_state_dict
            state = read_state_dict(pretrained)
            missing = [k for k in self.state_dict() if k not in state
                       and not (allow_missing_refiner and k.startswith("refiner."))]
            assert not missing, f"{pretrained} lacks {missing}"
            self.set_state_dict({k: v for k, v in state.items() if k in self.state_dict()})

    def forward(self, img, trimap):
        if self.training:
            self.calls += 1
        logit = self.decoder(self.backbone(paddle.concat([img, trimap / 255.0], axis=1)))
        if self.nan_at and self.training and self.calls >= self.nan_at:
            logit = logit * float("nan")
        out = {"alpha_pred": paddle.nn.functional.sigmoid(logit)}
        out["alpha"] = out["alpha_pred"]
        if self.refiner is not None:
            out["alpha_refined"] = out["alpha"] = self.refiner(img, out["alpha_pred"], logit)
        return out

    def predict(self, image01, trimap_u8):
        img, trimap, size = preprocess(image01, trimap_u8, (0.485, 0.456, 0.406),
                                       (0.229, 0.224, 0.225), pad_multiple=1)
        was_training = self.training
        self.eval()
        with paddle.no_grad():
            alpha = self(paddle.to_tensor(img), paddle.to_tensor(trimap))["alpha"].numpy()
        if was_training:
            self.train()
        return postprocess(alpha, trimap_u8, size)


if "TrainTestNet" not in manager.MODELS:
    manager.MODELS.add_component(TrainTestNet)


def load_train_tool():
    from script_loader import load_script

    return load_script(os.path.relpath(TRAIN_TOOL, ROOT))


TRAIN = load_train_tool()

# 32-pixel crops of the bundled demo data
SMALL_DATA = """
train_dataset:
  transforms:
    - type: LoadImages
    - type: FitBackground
    - type: RandomCropAroundUnknown
      crop_sizes: [64]
    - type: RandomHorizontalFlip
    - type: Resize
      target_size: [32, 32]
    - type: Composite
    - type: GenerateTrimap
      kernel_size_range: [1, 7]
    - type: Normalize
"""


def write_config(folder, stage=1, refiner=None, nan_at=0, iters=4, batch_size=2, lr=1e-3, extra=""):
    """A one-stage config: losses, optimiser and frozen parts from configs/dim/dim-vgg16-stageN.yml,
    the tiny network, 32-pixel crops of the bundled demo data."""
    refiner = stage != 1 if refiner is None else refiner
    text = f"""
    _base_: {os.path.join(DIM_CONFIGS, f'dim-vgg16-stage{stage}.yml')}
    iters: {iters}
    batch_size: {batch_size}
    model:
      _inherited_: false
      type: TrainTestNet
      refiner: {str(refiner).lower()}
      nan_at: {nan_at}
    lr_scheduler:
      learning_rate: {lr}
    """
    path = os.path.join(str(folder), f"stage{stage}.yml")
    with open(path, "w") as handle:
        handle.write(textwrap.dedent(text) + SMALL_DATA + textwrap.dedent(extra))
    return path


def write_stages_config(folder, iters=4, batch_size=2, lr=1e-3, name="stages.yml", stage2_nan_at=0,
                        extra=""):
    """DIM's three stages as configs/dim/dim-vgg16.yml defines them (losses, frozen parts, the
    hand-over), with the tiny network: stage 1 without its refiner, stage 2 accepting a
    checkpoint without one. ``stage2_nan_at`` makes stage 2 crash at that iteration."""
    text = f"""
    _base_: {os.path.join(DIM_CONFIGS, 'dim-vgg16.yml')}
    iters: {iters}
    batch_size: {batch_size}
    model:
      _inherited_: false
      type: TrainTestNet
    lr_scheduler:
      learning_rate: {lr}
    train:
      save_interval: 2
      stages:
        stage1:
          model: {{_inherited_: false, refiner: false}}
        stage2:
          model: {{_inherited_: false, allow_missing_refiner: true, nan_at: {stage2_nan_at}}}
    """
    path = os.path.join(str(folder), name)
    with open(path, "w") as handle:
        handle.write(textwrap.dedent(text) + SMALL_DATA + textwrap.dedent(extra))
    return path


def run_train(config, save_dir, *flags, seed=7):
    args = ["--config", config, "--save_dir", str(save_dir), "--seed", str(seed), "--log_iters", "1",
            "--progress_bar", "off"] + [str(f) for f in flags]
    TRAIN.main(args)


def read_params(path):
    """``{name: array}`` of a state dict file (ppmatting's restricted reader)."""
    from ppmatting.weights.files import read_state_dict
    return {k: np.asarray(v) for k, v in read_state_dict(str(path)).items()}


def assert_same_state(path_a, path_b):
    a, b = read_params(path_a), read_params(path_b)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
