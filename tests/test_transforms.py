"""Transforms: the composition identity, exact inverses of geometry, trimap generation."""
import os
import textwrap

import numpy as np
import pytest

from ppmatting.transforms.sample import GeometryRecord, Sample, undo_geometry
from ppmatting.transforms import (Composite, GenerateTrimap, Normalize, PadToMultiple, RandomColorJitter,
                                  RandomCropAroundUnknown, RandomHorizontalFlip, Resize, trimap_from_alpha,
                                  trimap_from_mask)
from ppmatting.utils.synthetic import make_foreground


def hairy_sample(seed=0, hw=(120, 100)):
    rng = np.random.default_rng(seed)
    fg, alpha = make_foreground("furry", hw, rng, supersample=2)
    bg = rng.random(hw + (3,)).astype(np.float32)
    return Sample(fg=fg, bg=bg, alpha=alpha, name="s")


def augmented(seed, jitter_prob):
    rng = np.random.default_rng(seed)
    sample = hairy_sample(seed)
    for transform in (RandomCropAroundUnknown([64, 96, 160]), RandomHorizontalFlip(0.5), Resize([80, 80]),
                      RandomColorJitter(hue=30, saturation=0.4, value=0.4, prob=jitter_prob), Composite(),
                      GenerateTrimap([1, 15]), Normalize()):
        sample = transform(sample, rng)
    return sample


def test_composition_identity_holds_after_augmentation():
    for seed in range(5):
        sample = augmented(seed, jitter_prob=1.0)
        alpha = sample.alpha[:, :, None]
        recomposed = alpha * sample.fg + (1 - alpha) * sample.bg
        assert sample.image.shape == (80, 80, 3)
        assert np.abs(recomposed - sample.image).max() <= 1 / 255
        # the jitter really changed the colours (otherwise the identity is trivially true): the
        # same crop, flip and resize without it (the geometry draws come first) give other colours
        plain = augmented(seed, jitter_prob=0.0)
        assert plain.fg.shape == sample.fg.shape
        for key in ("fg", "bg"):
            assert np.abs(getattr(sample, key) - getattr(plain, key)).mean() > 0.01, key
        np.testing.assert_array_equal(sample.alpha, plain.alpha)


def test_colour_jitter_after_composite_is_refused_when_the_pipeline_is_built(tmp_path):
    from ppmatting.cvlibs.config import Config
    from ppmatting.transforms import Compose
    from ppmatting.utils.errors import ConfigError
    with pytest.raises(ValueError, match=r"transforms\[1\] \(RandomColorJitter\) comes after "
                                         r"transforms\[0\] \(Composite\)"):
        Compose([Composite(), RandomColorJitter()])
    Compose([RandomColorJitter(), Composite()])  # the right order builds
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                        "matting_demo")
    config = tmp_path / "jitter_late.yml"
    config.write_text(textwrap.dedent(f"""
        train_dataset:
          type: MattingDataset
          dataset_root: {root}
          file_list: train.txt
          list_format: composition
          transforms:
            - type: LoadImages
            - type: Composite
            - type: RandomColorJitter
            - type: Normalize
        """))
    with pytest.raises(ConfigError) as info:
        Config(str(config)).train_dataset
    message = str(info.value)
    shown = os.path.relpath(config)  # messages name a config inside the working folder relatively
    shown = str(config) if shown.startswith("..") else shown
    assert "\n" not in message and message.startswith(f"{shown}: train_dataset")
    assert "transforms[2] (RandomColorJitter) comes after transforms[1] (Composite)" in message


def test_pad_and_crop_and_flip_undo_exactly():
    rng = np.random.default_rng(1)
    sample = hairy_sample(1, (70, 45))
    original = sample.alpha.copy()
    for transform in (RandomHorizontalFlip(1.0), PadToMultiple(32)):
        sample = transform(sample, rng)
    assert sample.alpha.shape == (96, 64)
    assert [r.op for r in sample.geometry] == ["flip", "pad"]
    np.testing.assert_array_equal(undo_geometry(sample.alpha, sample.geometry), original)


def test_crop_undo_places_prediction_back():
    rng = np.random.default_rng(2)
    sample = hairy_sample(2, (120, 100))
    original = sample.alpha.copy()
    sample = RandomCropAroundUnknown([64])(sample, rng)
    restored = undo_geometry(sample.alpha, sample.geometry, fill=-1.0)
    covered = restored >= 0
    assert covered.sum() == 64 * 64
    np.testing.assert_array_equal(restored[covered], original[covered])
    # the crop is centred on an unknown pixel, so it holds some
    assert ((sample.alpha > 0) & (sample.alpha < 1)).any()


def test_crop_upscales_small_samples_and_resize_undo_restores_shape():
    rng = np.random.default_rng(3)
    sample = hairy_sample(3, (50, 40))
    sample = RandomCropAroundUnknown([64])(sample, rng)
    assert sample.alpha.shape == (64, 64)
    assert [r.op for r in sample.geometry] == ["resize", "crop"]
    restored = undo_geometry(sample.alpha, sample.geometry)
    assert restored.shape == (50, 40)


def test_nearest_resize_undo_is_exact_for_integer_factors():
    labels = np.random.default_rng(4).integers(0, 3, (20, 30)).astype(np.uint8)
    sample = Sample(trimap=labels)
    sample = Resize([60, 90])(sample)
    np.testing.assert_array_equal(undo_geometry(sample.trimap, sample.geometry, "nearest"), labels)


def test_undo_rejects_wrong_shape():
    with pytest.raises(ValueError, match="expects"):
        undo_geometry(np.zeros((10, 10)), [GeometryRecord("pad", (5, 5), (8, 8), (3, 3))])


def test_trimap_generation_covers_every_fractional_pixel():
    for seed in range(4):
        sample = hairy_sample(seed)
        rng = np.random.default_rng(seed)
        sample = GenerateTrimap([1, 29])(sample, rng)
        trimap, alpha = sample.trimap, sample.alpha
        assert set(np.unique(trimap)) <= {0, 128, 255}
        fractional = (alpha > 0) & (alpha < 1)
        assert (trimap[fractional] == 128).all()
        assert (alpha[trimap == 255] == 1).all()
        assert (alpha[trimap == 0] == 0).all()
        assert (trimap == 128).sum() > fractional.sum()  # the band is wider than the edge


def test_trimap_from_alpha_smallest_kernel():
    alpha = np.zeros((9, 9), np.float32)
    alpha[2:7, 2:7] = 1.0
    alpha[4, 7] = 0.5
    trimap = trimap_from_alpha(alpha, 1, 1)
    assert trimap[4, 7] == 128 and trimap[4, 4] == 255 and trimap[0, 0] == 0


def test_trimap_from_mask_band_width():
    mask = np.zeros((101, 101), np.uint8)
    mask[:, :50] = 255
    trimap = trimap_from_mask(mask, unknown_width=6)
    row = trimap[50]
    unknown = np.nonzero(row == 128)[0]
    assert unknown.min() == 50 - 6 and unknown.max() == 49 + 6
    assert (row[:44] == 255).all() and (row[56:] == 0).all()


def test_normalize_matches_formula():
    image = np.random.default_rng(5).random((4, 5, 3)).astype(np.float32)
    sample = Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])(Sample(image=image))
    np.testing.assert_allclose(sample.image_norm, image * 2 - 1, atol=1e-6)


def test_fit_background_is_adobes_rule_for_files_and_for_training():
    from PIL import Image

    from ppmatting.transforms import FitBackground, fit_background

    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)   # smaller than 50 x 40 (H x W)
    # the rule written out with PIL: ratio = max(40/20, 50/30) = 2 -> 40 x 60 (W x H), top-left crop
    expected = np.asarray(Image.fromarray(small).resize((40, 60), Image.BICUBIC))[:50, :40]
    fitted = fit_background(small, 50, 40)
    assert fitted.dtype == np.uint8 and np.array_equal(fitted, expected)
    # float [0, 1] (the training transform): the same rule; PIL's 8-bit passes round in between,
    # the float ones do not, so the two differ by about 1/255 at most
    sample = Sample(fg=np.zeros((50, 40, 3), np.float32), bg=small.astype(np.float32) / 255.0)
    out = FitBackground()(sample).bg
    assert out.shape == (50, 40, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - expected / 255.0).max() <= 1.5 / 255.0
    # a larger background is only cropped (top-left), never scaled
    large = rng.random((80, 90, 3)).astype(np.float32)
    np.testing.assert_array_equal(fit_background(large, 50, 40), large[:50, :40])
