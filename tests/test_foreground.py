"""Foreground estimation (ppmatting.utils.foreground): recovers F on a composite with known F, the
cropped fast path agrees with the whole-image estimate, inputs are checked."""
import numpy as np
import pytest

from ppmatting.utils.errors import InputError
from ppmatting.utils.foreground import estimate_foreground, partial_box


def composite_scene(height=64, width=80, seed=0):
    """Smooth orange foreground, blue-green background, a soft vertical edge with wisps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    edge = 0.5 * width + 4 * np.sin(yy / 5)
    alpha = np.clip((xx - edge) / 10 + 0.5, 0, 1)
    alpha[::7, :] = np.clip(alpha[::7, :] + 0.2 * (alpha[::7, :] > 0), 0, 1)
    fg = np.stack([0.95 - 0.1 * yy / height, 0.55 + 0 * xx, 0.15 + 0 * xx], axis=2)
    bg = np.stack([0.1 + 0 * xx, 0.45 + 0.2 * xx / width, 0.8 + 0 * xx], axis=2)
    image = alpha[:, :, None] * fg + (1 - alpha[:, :, None]) * bg
    image = np.clip(image + rng.normal(0, 0.003, image.shape), 0, 1).astype(np.float32)
    return image, alpha.astype(np.float32), fg.astype(np.float32)


def test_foreground_is_recovered_where_alpha_is_partial():
    image, alpha, fg = composite_scene()
    est = estimate_foreground(image, alpha)
    assert est.shape == image.shape and est.dtype == np.float32
    assert est.min() >= 0 and est.max() <= 1
    partial = (alpha > 0.1) & (alpha < 0.9)
    naive_error = np.abs(image - fg)[partial].mean()      # the photo still shows the background
    error = np.abs(est - fg)[partial].mean()
    assert error < 0.35 * naive_error, (error, naive_error)
    solid = alpha >= 0.999
    assert np.abs(est - image)[solid].mean() < 0.01         # F = I where the subject is opaque


def test_cropped_fast_path_matches_the_whole_image_estimate():
    image, alpha, _ = composite_scene(72, 160)
    alpha[:, :40] = 0.0                                    # a wide opaque/transparent margin
    alpha[:, 120:] = 1.0
    box = partial_box(alpha, 16)
    assert box is not None and box[3] - box[2] < 160       # the crop is narrower than the image
    cropped = estimate_foreground(image, alpha, crop_margin=16)
    whole = estimate_foreground(image, alpha)
    partial = (alpha > 0.05) & (alpha < 0.95)
    assert np.abs(cropped - whole)[partial].mean() < 0.02


def test_background_and_trivial_alpha():
    image, alpha, _ = composite_scene()
    fg, bg = estimate_foreground(image, alpha, return_background=True)
    assert fg.shape == bg.shape == image.shape
    opaque = np.ones_like(alpha)
    assert np.array_equal(estimate_foreground(image, opaque, crop_margin=8), image)  # F = I


def test_uint8_inputs_and_errors():
    image, alpha, _ = composite_scene(32, 32)
    est8 = estimate_foreground((image * 255).round().astype(np.uint8),
                               (alpha * 255).round().astype(np.uint8))
    assert est8.dtype == np.float32 and est8.max() <= 1.0
    with pytest.raises(InputError, match="does not match"):
        estimate_foreground(image, alpha[:10])
    with pytest.raises(InputError, match="H x W x 3"):
        estimate_foreground(image[:, :, 0], alpha)


def test_an_estimate_that_does_not_fit_is_refused_in_one_line(monkeypatch):
    import ppmatting.utils.foreground as foreground

    image, alpha, _ = composite_scene(32, 40)
    monkeypatch.setattr(foreground, "default_budget_bytes", lambda: 40 * 32 * 100)
    with pytest.raises(InputError, match=r"a 40x32 image needs about .* crop_margin"):
        estimate_foreground(image, alpha)
    # the partly transparent region alone fits
    alpha[:, :14], alpha[:, 26:] = 0.0, 1.0
    assert estimate_foreground(image, alpha, crop_margin=1).shape == image.shape
