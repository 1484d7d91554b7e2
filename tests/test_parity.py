"""The tie-robust parity criterion: a near-tie flip passes, a real difference fails."""
import numpy as np
import pytest

from ppmatting.deploy.parity import compare_alphas


def _alpha(seed=0, size=(1, 1, 128, 128)):
    return np.random.default_rng(seed).random(size).astype(np.float32)


def test_identical_and_rounding_noise_pass():
    a = _alpha()
    assert compare_alphas(a, a).ok
    noisy = a + np.random.default_rng(1).normal(0, 1e-5, a.shape).astype(np.float32)
    result = compare_alphas(a, noisy)
    assert result.ok and result.share_within == 1.0 and result.max_diff < 1e-4


def test_a_near_tie_flip_passes_but_a_real_difference_fails():
    a = _alpha()
    flip = a.copy()
    flip[0, 0, 40:43, 60:63] += 0.06  # 9 pixels moved by a max-pool flip: 0.05% of 16384
    result = compare_alphas(a, flip)
    assert result.ok, result.describe()
    assert result.max_diff == pytest.approx(0.06, abs=1e-6)
    shifted = np.clip(a + 0.01, 0, 1)  # every pixel off by 2.5/255: another network
    assert not compare_alphas(a, shifted).ok
    spike = a.copy()
    spike[0, 0, 5, 5] += 0.5  # one pixel wildly off: bounded maximum
    assert not compare_alphas(a, spike).ok


def test_mask_restricts_the_comparison_and_shapes_must_agree():
    a = _alpha()
    b = a.copy()
    b[..., :64] += 0.2
    mask = np.zeros(a.shape, bool)
    mask[..., 64:] = True
    assert compare_alphas(a, b, mask=mask).ok
    assert not compare_alphas(a, b).ok
    with pytest.raises(ValueError):
        compare_alphas(a, b[..., :10])
    with pytest.raises(ValueError):
        compare_alphas(a, b, mask=np.zeros(a.shape, bool))


def test_nan_fails():
    a = _alpha()
    b = a.copy()
    b[0, 0, 0, 0] = np.nan
    assert not compare_alphas(a, b).ok
