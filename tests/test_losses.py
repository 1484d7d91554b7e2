"""DIM's losses: Charbonnier over unknown pixels, composition with fg/bg, refine, config wiring."""
import os

import numpy as np
import paddle
import pytest

from ppmatting.cvlibs.config import Config
from ppmatting.losses import AlphaLoss, CompositionLoss, RefineLoss
from ppmatting.utils.errors import ConfigError

EPS = 1e-12


def make_batch(rng, n=2, h=6, w=5, comp_valid=(1.0, 1.0)):
    trimap = rng.choice([0.0, 128.0, 255.0], size=(n, 1, h, w)).astype(np.float32)
    trimap[:, :, 0, 0] = 128.0  # every sample has unknown pixels
    alpha = rng.random((n, 1, h, w)).astype(np.float32)
    fg = rng.random((n, 3, h, w)).astype(np.float32)
    bg = rng.random((n, 3, h, w)).astype(np.float32)
    image01 = (alpha * fg + (1 - alpha) * bg).astype(np.float32)
    return {"trimap": trimap, "alpha": alpha, "fg": fg, "bg": bg, "image01": image01,
            "comp_valid": np.asarray(comp_valid[:n], np.float32)}


def as_tensors(batch):
    return {k: paddle.to_tensor(v) for k, v in batch.items()}


def reference_alpha_loss(pred, batch):
    """mmediting's masked Charbonnier loss in NumPy (float64): sqrt(d^2 + eps) averaged over the
    unknown pixels, sum(loss * mask) / (sum(mask) + 1e-12)."""
    mask = (batch["trimap"] == 128).astype(np.float64)
    loss = np.sqrt((pred.astype(np.float64) - batch["alpha"]) ** 2 + EPS)
    return (loss * mask).sum() / (mask.sum() + 1e-12)


def reference_comp_loss(pred, batch):
    comp = pred * batch["fg"] + (1 - pred) * batch["bg"]
    loss = np.sqrt((comp.astype(np.float64) - batch["image01"]) ** 2 + EPS)
    mask = (batch["trimap"] == 128) * batch["comp_valid"].reshape(-1, 1, 1, 1)
    mask = np.broadcast_to(mask, loss.shape).astype(np.float64)
    return (loss * mask).sum() / (mask.sum() + 1e-12)


def test_alpha_loss_matches_formula_and_ignores_known_pixels():
    rng = np.random.default_rng(0)
    batch = make_batch(rng)
    pred = rng.random(batch["alpha"].shape).astype(np.float32)
    loss = AlphaLoss(weight=0.5)
    value = float(loss({"alpha_pred": paddle.to_tensor(pred)}, as_tensors(batch)))
    np.testing.assert_allclose(value, 0.5 * reference_alpha_loss(pred, batch), rtol=1e-5)

    changed = pred.copy()
    known = batch["trimap"] != 128
    changed[known] = 1.0 - changed[known]  # known pixels do not count
    again = float(loss({"alpha_pred": paddle.to_tensor(changed)}, as_tensors(batch)))
    assert again == pytest.approx(value, rel=1e-6)
    changed[batch["trimap"] == 128] += 0.1
    assert float(loss({"alpha_pred": paddle.to_tensor(changed)}, as_tensors(batch))) != \
        pytest.approx(value, rel=1e-3)


def test_charbonnier_floor_gradient_and_empty_unknown_region():
    rng = np.random.default_rng(1)
    batch = make_batch(rng)
    pred = paddle.to_tensor(batch["alpha"].copy(), stop_gradient=False)
    value = AlphaLoss()({"alpha_pred": pred}, as_tensors(batch))
    assert float(value) == pytest.approx(1e-6, rel=1e-3)  # sqrt(eps) with a perfect prediction
    value.backward()
    assert np.isfinite(pred.grad.numpy()).all()

    batch["trimap"][:] = 255.0  # no unknown pixel: zero, not NaN
    zero = AlphaLoss()({"alpha_pred": paddle.to_tensor(batch["alpha"])}, as_tensors(batch))
    assert float(zero) == 0.0


def test_composition_loss_matches_formula_and_skips_precomposited_samples():
    rng = np.random.default_rng(2)
    batch = make_batch(rng, n=3, comp_valid=(1.0, 0.0, 1.0))
    pred = rng.random(batch["alpha"].shape).astype(np.float32)
    loss = CompositionLoss(weight=0.5)
    value = float(loss({"alpha_pred": paddle.to_tensor(pred)}, as_tensors(batch)))
    np.testing.assert_allclose(value, 0.5 * reference_comp_loss(pred, batch), rtol=1e-5)

    # the pre-composited sample (comp_valid 0) does not move the loss, whatever its prediction
    other = pred.copy()
    other[1] = rng.random(other[1].shape)
    assert float(loss({"alpha_pred": paddle.to_tensor(other)}, as_tensors(batch))) == \
        pytest.approx(value, rel=1e-6)

    batch["comp_valid"][:] = 0.0
    assert float(loss({"alpha_pred": paddle.to_tensor(pred)}, as_tensors(batch))) == 0.0

    batch = make_batch(rng)
    perfect = float(CompositionLoss()({"alpha_pred": paddle.to_tensor(batch["alpha"])},
                                      as_tensors(batch)))
    assert perfect < 1e-5  # the true alpha recomposes the image


def test_refine_loss_reads_the_refined_alpha_and_names_a_missing_output():
    rng = np.random.default_rng(3)
    batch = make_batch(rng)
    refined = rng.random(batch["alpha"].shape).astype(np.float32)
    outputs = {"alpha_pred": paddle.to_tensor(batch["alpha"]), "alpha_refined": paddle.to_tensor(refined)}
    loss = RefineLoss()
    assert (loss.name, loss.pred_key, loss.weight) == ("refine_loss", "alpha_refined", 1.0)
    np.testing.assert_allclose(float(loss(outputs, as_tensors(batch))),
                               reference_alpha_loss(refined, batch), rtol=1e-5)
    with pytest.raises(ConfigError, match="alpha_refined.*without a refiner"):
        loss({"alpha_pred": outputs["alpha_pred"], "alpha": outputs["alpha_pred"]}, as_tensors(batch))


def test_bad_loss_arguments_are_config_errors(tmp_path):
    for kwargs in ({"weight": -1}, {"eps": 0}, {"weight": "a"}):
        with pytest.raises(ValueError):
            AlphaLoss(**kwargs)
    path = tmp_path / "bad.yml"
    path.write_text("losses:\n  - type: AlphaLoss\n    wieght: 0.5\n")
    with pytest.raises(ConfigError, match="wieght.*did you mean 'weight'"):
        Config(str(path)).losses


@pytest.mark.parametrize("stage, expected", [
    (1, [("AlphaLoss", "alpha_pred", 0.5), ("CompositionLoss", "alpha_pred", 0.5)]),
    (2, [("RefineLoss", "alpha_refined", 1.0)]),
    (3, [("AlphaLoss", "alpha_pred", 0.5), ("CompositionLoss", "alpha_pred", 0.5),
         ("RefineLoss", "alpha_refined", 1.0)]),
])
def test_stage_configs_define_the_dim_recipe(repo_root, stage, expected):
    cfg = Config(os.path.join(repo_root, "configs", "dim", f"dim-vgg16-stage{stage}.yml"))
    losses = cfg.losses
    assert [(type(x).__name__, x.pred_key, x.weight) for x in losses] == expected
    assert all(x.eps == 1e-12 for x in losses)
    assert cfg.dic["optimizer"]["type"] == "Adam"
    assert cfg.lr_scheduler() == 1e-5  # constant
    frozen = cfg.train_settings.get("frozen", [])
    assert frozen == (["backbone", "decoder"] if stage == 2 else [])
