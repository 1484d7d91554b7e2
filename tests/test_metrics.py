"""The four matting metrics: hand-computed cases, invariances, edge cases, and agreement of the fast
implementations with the straightforward reference ones."""
import math

import cv2
import numpy as np
import pytest

from ppmatting.metrics import (Conn, Grad, compute_metrics, gaussian_halfsize, generated_trimap,
                               ground_truth_to_code, prepare_pair)
from ppmatting.metrics.reference import reference_metrics
from ppmatting.utils.errors import InputError

ALL = ("sad", "mse", "grad", "conn")


def u8(rows):
    return np.array(rows, dtype=np.uint8)


# ---- SAD and MSE -----------------------------------------------------------------------------------
def test_sad_and_mse_by_hand():
    gt = u8([[0, 255, 51], [102, 204, 255]])
    pred = u8([[51, 255, 0], [153, 99, 0]])
    trimap = u8([[128, 128, 128], [128, 0, 128]])  # (1, 1) is known: not scored
    scores = compute_metrics(pred, gt, trimap, ["sad", "mse"])
    # unknown differences in 1/255 steps: 51, 0, 51, 51, 255 -> 0.2, 0, 0.2, 0.2, 1.0
    assert scores["sad"] == pytest.approx(1.6 / 1000, abs=1e-15)
    assert scores["mse"] == pytest.approx((3 * 0.04 + 1.0) / 5, abs=1e-15)


def test_prediction_is_quantised_to_8_bits_before_scoring():
    gt = u8([[0]])
    trimap = u8([[128]])
    # 0.1001 * 255 = 25.53 -> saved as 26, so SAD uses 26/255, not 0.1001
    assert compute_metrics(np.array([[0.1001]], np.float32), gt, trimap, ["sad"])["sad"] == \
        pytest.approx(26 / 255 / 1000, abs=1e-15)


def test_sixteen_bit_ground_truth_is_scored_on_its_own_grid():
    gt16 = np.array([[32768, 39321]], dtype=np.uint16)       # 39321 / 65535 == 0.6 exactly
    pred = u8([[128, 255]])
    trimap = u8([[128, 128]])
    scores = compute_metrics(pred, gt16, trimap, ["sad", "mse"])
    diffs = np.array([128 * 257 - 32768, 255 * 257 - 39321]) / 65535.0
    assert scores["sad"] == pytest.approx(np.abs(diffs).sum() / 1000, abs=1e-15)
    assert scores["mse"] == pytest.approx((diffs ** 2).mean(), abs=1e-15)
    # a float alpha read from a 16-bit file (read_alpha divides by 65535) gives the same numbers
    same = compute_metrics(pred, (gt16 / 65535.0).astype(np.float32), trimap, ["sad", "mse"])
    assert same == scores


def test_float_ground_truth_from_8_bit_file_is_put_back_on_the_8_bit_grid():
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    code, full = ground_truth_to_code((codes / 255.0).astype(np.float32))
    assert full == 255 and code.dtype == np.uint8 and np.array_equal(code, codes)
    code, full = ground_truth_to_code(np.array([[0.3333]], np.float32))
    assert full == 65535 and code[0, 0] == round(0.3333 * 65535)


# ---- Grad --------------------------------------------------------------------------------------------
def test_gradient_kernel_is_9x9_for_sigma_1_4():
    assert gaussian_halfsize(1.4) == 4
    grad = Grad(1.4)
    kernel = np.outer(grad.smooth, grad.derive)
    assert kernel.shape == (9, 9)
    assert np.sum(kernel ** 2) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("vertical", [False, True])
def test_grad_of_a_linear_ramp_by_hand(vertical):
    height, width = 20, 40
    gt = np.tile((6 * np.arange(width)).astype(np.uint8), (height, 1))   # codes 0..234
    trimap = np.zeros((height, width), np.uint8)
    trimap[4:16, 4:36] = 128      # windows of the unknown pixels stay inside the image
    pred = np.zeros((height, width), np.float32)   # constant: its gradient is 0
    if vertical:
        gt, trimap, pred = gt.T.copy(), trimap.T.copy(), pred.T.copy()
    # After min-max normalisation the ramp is x / 39. Correlating a x with the separable kernel
    # s(i) d(j) gives a * sum(s) * sum(j d(j)) (sum(d) = 0), the other direction gives 0.
    sigma, u = 1.4, np.arange(-4, 5, dtype=np.float64)
    gauss = np.exp(-u ** 2 / (2 * sigma ** 2))
    smooth = gauss / np.linalg.norm(gauss)
    derive = -u * gauss / np.linalg.norm(u * gauss)
    magnitude = (1 / 39) * abs(smooth.sum() * np.sum(u * derive))
    expected = 12 * 32 * magnitude ** 2 / 1000
    assert compute_metrics(pred, gt, trimap, ["grad"])["grad"] == pytest.approx(expected, rel=1e-12)
    assert expected > 1e-3   # the case is not trivially zero


def test_grad_uses_replicate_border_at_the_image_edge():
    # A ramp that reaches the left edge; the scored pixels are the first two columns, whose
    # windows stick out of the image. Replicate border: f(x) for x < 0 is f(0).
    height, width = 12, 30
    gt = np.tile((8 * np.arange(width)).astype(np.uint8), (height, 1))   # normalised: x / 29
    trimap = np.zeros((height, width), np.uint8)
    trimap[:, :2] = 128
    pred = np.zeros((height, width), np.float32)
    sigma, u = 1.4, np.arange(-4, 5, dtype=np.float64)
    gauss = np.exp(-u ** 2 / (2 * sigma ** 2))
    smooth = gauss / np.linalg.norm(gauss)
    derive = -u * gauss / np.linalg.norm(u * gauss)
    expected = 0.0
    for x in (0, 1):
        ramp = np.array([min(max(x + j, 0), width - 1) / 29 for j in range(-4, 5)])
        expected += height * (smooth.sum() * np.dot(derive, ramp)) ** 2
    assert compute_metrics(pred, gt, trimap, ["grad"])["grad"] == \
        pytest.approx(expected / 1000, rel=1e-12)


# ---- Conn --------------------------------------------------------------------------------------------
def test_conn_with_several_components_by_hand():
    # A: 6 pixels g=77 (0.302), p=128 (0.502)  -> both pass t = 0.1 .. 0.3
    # B: 3 pixels g=204 (0.8), p=255          -> both pass t = 0.1 .. 0.8
    # t = 0.1..0.3: A (6 px) is the largest, so B leaves at t_1: l = 0.
    # t = 0.4: only B remains, so A leaves: l = t_3 = 0.3.
    g = np.zeros((2, 8), np.uint8)
    p = np.zeros((2, 8), np.uint8)
    g[:, 0:3], p[:, 0:3] = 77, 128
    g[0, 4:6], p[0, 4:6] = 204, 255
    g[1, 4], p[1, 4] = 204, 255
    trimap = np.full(g.shape, 128, np.uint8)
    # A with l = 0.3: d_g = 0.002 < 0.15 -> phi_g = 1; d_p = 0.202 -> phi_p = 1 - d_p
    per_a = 128 / 255 - 0.3
    # B with l = 0: phi_g = 1 - 0.8, phi_p = 1 - 1
    per_b = 0.2
    expected = (6 * per_a + 3 * per_b) / 1000
    assert compute_metrics(p, g, trimap, ["conn"])["conn"] == pytest.approx(expected, abs=1e-15)
    exits = Conn().exit_level_map(prepare_pair(p, g, trimap))
    assert set(exits[g == 77].tolist()) == {4} and set(exits[g == 204].tolist()) == {1}


def test_conn_counts_153_at_threshold_0_6():
    # Alone in the image, g = 153 (exactly 0.6) stays in the largest component up to t = 0.6 and
    # leaves at 0.7 (l = 0.6). A float threshold 0.6000000000000001 would drop it at 0.6 (l = 0.5).
    g = u8([[153, 153]])
    p = u8([[255, 255]])
    trimap = u8([[128, 128]])
    # l = 0.6: phi_g = 1 (d = 0), phi_p = 1 - 0.4 -> 0.4 per pixel (with l = 0.5 it would be 0.5)
    assert compute_metrics(p, g, trimap, ["conn"])["conn"] == pytest.approx(0.8 / 1000, abs=1e-15)


@pytest.mark.parametrize("p_first", [False, True])
def test_conn_ties_go_to_first_component_in_column_major_order(p_first):
    # Two components of 2 pixels: P (g = p = 51, passes t <= 0.2) and Q (g = 102, p = 128, passes
    # t <= 0.4). They tie at t = 0.1 and 0.2. MATLAB's bwconncomp numbers components column by
    # column, so the one with the leftmost first pixel is kept.
    g = np.zeros((4, 3), np.uint8)
    p = np.zeros((4, 3), np.uint8)
    p_col, q_col = (0, 2) if p_first else (2, 0)
    g[0:2, p_col], p[0:2, p_col] = 51, 51        # P: rows 0-1 (first in row-major order)
    g[2:4, q_col], p[2:4, q_col] = 102, 128      # Q: rows 2-3
    trimap = np.full(g.shape, 128, np.uint8)
    conn = compute_metrics(p, g, trimap, ["conn"])["conn"]
    if p_first:
        # P kept: Q leaves at t_1 (l = 0): |(1 - 0.4) - (1 - 128/255)| per pixel
        assert conn == pytest.approx(2 * (128 / 255 - 0.4) / 1000, abs=1e-15)
    else:
        # Q kept (column 0 comes first), stays to t = 0.4, l = 0.4: d_g = 0, d_p = 0.102 < 0.15
        assert conn == pytest.approx(0.0, abs=1e-15)
    assert conn == pytest.approx(reference_metrics(p, g, 255, trimap, ["conn"])["conn"], abs=1e-15)


def test_conn_step_must_be_one_over_an_integer():
    assert Conn(0.05).steps == 20
    with pytest.raises(ValueError):
        Conn(0.3)


# ---- shared rules ------------------------------------------------------------------------------------
def _smooth_matte(rng, height, width, sigma=3.0):
    noise = cv2.GaussianBlur(rng.random((height, width)), (0, 0), sigma)
    noise = (noise - noise.min()) / max(noise.max() - noise.min(), 1e-9)
    return np.clip((noise - 0.3) * 2.5, 0, 1)


def test_perfect_prediction_scores_zero():
    rng = np.random.default_rng(3)
    gt = np.round(_smooth_matte(rng, 60, 80) * 255).astype(np.uint8)
    trimap = generated_trimap(gt, 255, 3)
    assert (trimap == 128).sum() > 500
    scores = compute_metrics(gt / 255.0, gt, trimap, ALL)
    assert scores == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


def test_known_regions_do_not_change_any_metric():
    rng = np.random.default_rng(4)
    gt = np.round(_smooth_matte(rng, 64, 64) * 255).astype(np.uint8)
    trimap = generated_trimap(gt, 255, 4)
    pred = np.clip(gt / 255.0 + rng.normal(0, 0.15, gt.shape), 0, 1)
    base = compute_metrics(pred, gt, trimap, ALL)
    assert all(value > 0 for value in base.values())
    changed = pred.copy()
    known = trimap != 128
    changed[known] = rng.random(int(known.sum()))      # garbage where the trimap is known
    assert compute_metrics(changed, gt, trimap, ALL) == base
    # ... while a change inside the unknown region does move them
    moved = pred.copy()
    moved[trimap == 128] = 1.0 - moved[trimap == 128]
    assert compute_metrics(moved, gt, trimap, ["sad"])["sad"] != base["sad"]


def test_empty_unknown_region_scores_zero_and_is_flagged():
    gt = u8([[0, 255], [255, 0]])
    trimap = u8([[0, 255], [255, 0]])
    pair = prepare_pair(np.full((2, 2), 0.5), gt, trimap)
    assert pair.empty_unknown and pair.unknown_pixels == 0
    assert compute_metrics(np.full((2, 2), 0.5), gt, trimap, ALL) == dict.fromkeys(ALL, 0.0)


def test_size_mismatch_names_both_inputs_and_shapes():
    with pytest.raises(InputError) as info:
        prepare_pair(np.zeros((4, 5)), np.zeros((4, 6), np.uint8), None,
                     names=("pred/a.png", "alpha/a.png", "trimap/a.png"))
    message = str(info.value)
    assert "pred/a.png" in message and "alpha/a.png" in message
    assert "(4, 5)" in message and "(4, 6)" in message and "\n" not in message
    with pytest.raises(InputError, match="trimap/a.png"):
        prepare_pair(np.zeros((4, 6)), np.zeros((4, 6), np.uint8), np.zeros((3, 6), np.uint8),
                     names=("pred/a.png", "alpha/a.png", "trimap/a.png"))


def test_trimap_values_outside_0_128_255_follow_the_threshold_rule():
    gt = u8([[0, 100, 200, 255]])
    pred = u8([[10, 10, 10, 10]])
    odd = u8([[63, 64, 191, 192]])          # -> 0, 128, 128, 255
    pair = prepare_pair(pred, gt, odd)
    assert pair.trimap_cleaned
    assert pair.trimap_u8.tolist() == [[0, 128, 128, 255]]
    assert pair.pred_u8.tolist() == [[0, 10, 10, 255]]


def test_missing_trimap_is_generated_from_the_ground_truth():
    gt = np.zeros((40, 40), np.uint8)
    gt[:, 20:] = 255                                 # a hard edge: no 0 < alpha < 1 pixel at all
    pair = prepare_pair(gt, gt, None, trimap_radius=3)
    assert pair.trimap_generated
    unknown_cols = np.flatnonzero((pair.trimap_u8 == 128).any(axis=0))
    assert unknown_cols.tolist() == list(range(17, 23))   # 3 px on each side of the edge
    assert (pair.trimap_u8[:, :17] == 0).all() and (pair.trimap_u8[:, 23:] == 255).all()


# ---- fast == reference -------------------------------------------------------------------------------
def _random_case(rng, kind):
    height, width = (int(v) for v in rng.integers(24, 90, 2))
    if kind == "noise":          # many small components and many exact ties
        gt = rng.choice([0, 51, 102, 153, 204, 255], (height, width)).astype(np.uint8)
        pred = rng.choice([0, 0.2, 0.4, 0.6, 0.8, 1.0], (height, width))
        trimap = rng.choice([0, 128, 255], (height, width)).astype(np.uint8)
        return pred, gt, 255, trimap
    gt01 = _smooth_matte(rng, height, width, sigma=float(rng.uniform(1.5, 6)))
    pred = np.clip(gt01 + rng.normal(0, 0.1, gt01.shape) +
                   (rng.random(gt01.shape) < 0.01) * 0.7, 0, 1).astype(np.float32)
    if kind == "16bit":
        gt, full = np.round(gt01 * 65535).astype(np.uint16), 65535
    else:
        gt, full = np.round(gt01 * 255).astype(np.uint8), 255
    trimap = generated_trimap(gt, full, int(rng.integers(1, 6)))
    return pred, gt, full, trimap


@pytest.mark.parametrize("kind", ["smooth", "16bit", "noise"])
def test_fast_metrics_equal_reference_implementations(kind):
    rng = np.random.default_rng({"smooth": 10, "16bit": 11, "noise": 12}[kind])
    for _ in range(12):
        pred, gt, full, trimap = _random_case(rng, kind)
        fast = compute_metrics(pred, gt, trimap, ALL)
        slow = reference_metrics(pred, gt, full, trimap)
        for name in ALL:
            assert fast[name] == pytest.approx(slow[name], abs=1e-9), (name, kind)


def test_fast_conn_equals_reference_when_the_largest_component_is_elsewhere():
    # The unknown pixels sit in a small component; a bigger one elsewhere wins every threshold.
    # That is where the "likely label" shortcut must fall back to counting every area.
    g = np.zeros((30, 30), np.uint8)
    g[2:5, 2:5] = 200
    g[10:28, 10:28] = 255
    p = g.copy()
    p[3, 3] = 120
    trimap = np.zeros_like(g)
    trimap[1:6, 1:6] = 128
    trimap[10:28, 10:28] = 255
    fast = compute_metrics(p, g, trimap, ["conn"])["conn"]
    slow = reference_metrics(p, g, 255, trimap, ["conn"])["conn"]
    assert fast == pytest.approx(slow, abs=1e-15) and fast > 0


def test_benchmark_synthetic_case_has_the_stated_unknown_share():
    # The benchmark's own data generator, at a small size: values agree with the reference.

    from script_loader import load_script

    bench = load_script("benchmarks/bench_metrics.py")
    pred, gt, trimap = bench.synthetic_case(size=256, unknown_fraction=0.3, seed=1)
    assert 0.2 < (trimap == 128).mean() < 0.45
    fast = compute_metrics(pred, gt, trimap, ALL)
    slow = reference_metrics(pred, gt, 255, trimap)
    for name in ALL:
        assert fast[name] == pytest.approx(slow[name], abs=1e-9)
    assert math.isfinite(fast["conn"]) and fast["conn"] > 0
