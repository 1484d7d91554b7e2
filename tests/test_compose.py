"""Background parsing, fitting and compositing (ppmatting/utils/compose.py)."""
import numpy as np
import pytest

from ppmatting.utils import compose
from ppmatting.apps import background
from ppmatting.apps import compare
from ppmatting.utils.errors import InputError
from ppmatting.utils.io import read_image, write_image


# ---- colours and backgrounds ---------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("white", (255, 255, 255)),
    ("Black", (0, 0, 0)),
    ("dodger-blue", (30, 144, 255)),
    ("#1e90ff", (30, 144, 255)),
    ("#1E90FF", (30, 144, 255)),
    ("#f80", (255, 136, 0)),
    ("30,144,255", (30, 144, 255)),
    (" 0, 255 ,0 ", (0, 255, 0)),
])
def test_parse_color_forms(text, expected):
    assert background.parse_color(text) == pytest.approx(tuple(v / 255 for v in expected))


@pytest.mark.parametrize("text", ["#12345", "#gg0000", "300,0,0", "1,2", "a,b,c", "-1,0,0"])
def test_malformed_colours_are_one_line_errors(text):
    with pytest.raises(InputError) as info:
        background.parse_color(text)
    assert text.strip() in str(info.value) and "\n" not in str(info.value)


def test_parse_color_returns_none_for_non_colours():
    assert background.parse_color("beach.jpg") is None
    assert background.parse_color("whitish") is None


def test_parse_background_kinds(tmp_path):
    photo = tmp_path / "beach.jpg"
    write_image(photo, np.full((10, 20, 3), 200, np.uint8))
    image_bg = background.parse_background(str(photo))
    assert image_bg.kind == "image" and image_bg.image01.shape == (10, 20, 3)
    np.testing.assert_allclose(image_bg.image01, 200 / 255, atol=1e-6)  # the file's pixels
    assert image_bg.tag == "beach" and image_bg.label == "beach.jpg"
    blur = background.parse_background("blur:7.5")
    assert blur.kind == "blur" and blur.sigma == 7.5 and blur.tag == "blur7.5"
    assert blur.label == "blur:7.5"
    assert background.parse_background("blur").sigma == background.DEFAULT_BLUR_SIGMA
    colour = background.parse_background("#00FF00")
    assert colour.kind == "color" and colour.color01 == (0.0, 1.0, 0.0) and colour.tag == "00FF00"
    assert background.parse_background("10,20,30").tag == "10-20-30"


@pytest.mark.parametrize("spec, fragment", [
    ("blur:-3", "positive"),
    ("blur:abc", "positive"),
    ("nosuch/bg.jpg", "file not found"),
    ("whtie", "did you mean white"),
    ("", "empty"),
])
def test_bad_backgrounds(spec, fragment):
    with pytest.raises(InputError) as info:
        background.parse_background(spec)
    assert fragment in str(info.value)


def test_unreadable_background_names_the_file(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError) as info:
        background.parse_background(str(broken))
    assert str(broken) in str(info.value)


# ---- fitting an image background -----------------------------------------------------------------
def _gradient(height, width):
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    return np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1), np.zeros_like(xx)], axis=2)


@pytest.mark.parametrize("mode", background.FIT_MODES)
@pytest.mark.parametrize("source, target", [((40, 60), (30, 30)), ((400, 600), (360, 400)),
                                            ((20, 10), (50, 70)), ((33, 17), (33, 17))])
def test_fit_gives_target_size(mode, source, target):
    bg = _gradient(*source)
    out = background.fit_image(bg, target, mode)
    assert out.shape == (*target, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    height, width = target
    if mode == "tile":     # the picture itself, unscaled, from the top-left corner
        h, w = min(height, source[0]), min(width, source[1])
        np.testing.assert_array_equal(out[:h, :w], bg[:h, :w])
    elif mode == "stretch":  # the whole picture: both ramps run from edge to edge
        assert out[:, 0, 0].max() < 0.1 and out[:, -1, 0].min() > 0.9
        assert out[0, :, 1].max() < 0.1 and out[-1, :, 1].min() > 0.9
    else:                    # cover: the centre of the picture stays in the centre
        np.testing.assert_allclose(out[height // 2, width // 2, :2], [0.5, 0.5], atol=0.1)
    # every mode keeps the ramps' direction (left to right in red where the width is not tiled)
    assert mode == "tile" or np.all(np.diff(out[height // 2, :, 0]) >= -1e-6)


def test_cover_keeps_aspect_ratio_and_centres():
    # a 40x80 (HxW) picture with a marked centre column onto a 40x40 target: scale 1, crop 20 px
    # from each side; the centre stays in the centre and nothing is squeezed
    bg = np.zeros((40, 80, 3), np.float32)
    bg[:, 38:42] = 1.0
    out = background.fit_image(bg, (40, 40), "cover")
    assert np.allclose(out[:, 18:22], 1.0) and np.allclose(out[:, :17], 0.0)
    stretched = background.fit_image(bg, (40, 40), "stretch")
    bright_cols = np.where(stretched[20, :, 0] > 0.5)[0]
    assert len(bright_cols) <= 3  # squeezed to half width


def test_cover_upscales_a_small_picture():
    bg = _gradient(10, 20)
    out = background.fit_image(bg, (40, 40), "cover")
    # scale 4 -> 40 x 80, crop 20 px left and right: the red ramp spans only the middle half
    assert 0.2 < out[20, 0, 0] < 0.3 and 0.7 < out[20, -1, 0] < 0.8
    assert out[0, 20, 1] < 0.05 and out[-1, 20, 1] > 0.95


def test_tile_repeats_without_scaling():
    bg = _gradient(7, 5)
    out = background.fit_image(bg, (20, 12), "tile")
    assert np.array_equal(out[:7, :5], bg) and np.array_equal(out[7:14, 5:10], bg)
    assert np.array_equal(out[14:20, 10:12], bg[:6, :2])


def test_unknown_fit_mode():
    with pytest.raises(InputError):
        background.fit_image(_gradient(4, 4), (4, 4), "zoom")


# ---- rendering and compositing -------------------------------------------------------------------
def test_render_colour_and_image(tmp_path):
    colour = background.render_background(background.parse_background("red"), (5, 6))
    assert colour.shape == (5, 6, 3) and np.allclose(colour, [1, 0, 0])
    path = tmp_path / "bg.png"
    write_image(path, _gradient(30, 60))
    image = background.render_background(background.parse_background(str(path)), (30, 30), "cover")
    assert image.shape == (30, 30, 3)
    # a 30 x 60 picture covering 30 x 30: the middle half of the red ramp, all of the green one
    assert 0.2 < image[15, 0, 0] < 0.3 and 0.7 < image[15, -1, 0] < 0.8
    assert image[0, 15, 1] < 0.05 and image[-1, 15, 1] > 0.95


def test_blurred_background_does_not_smear_the_subject():
    # white subject in the middle of a black background: a plain blur leaks white into the
    # background next to it; the alpha-weighted blur keeps the background black
    image = np.zeros((64, 64, 3), np.float32)
    alpha = np.zeros((64, 64), np.float32)
    image[16:48, 16:48] = 1.0
    alpha[16:48, 16:48] = 1.0
    bg = background.blurred_background(image, alpha, sigma=6)
    ring = np.zeros((64, 64), bool)
    ring[10:54, 10:54] = True
    ring[16:48, 16:48] = False
    assert bg[ring].max() < 0.02
    import cv2
    plain = cv2.GaussianBlur(image, (0, 0), 6)
    assert plain[ring].max() > 0.3  # what the weighting avoids


def test_composite_formula_and_checks():
    fg = np.full((4, 4, 3), 0.8, np.float32)
    bg = np.full((4, 4, 3), 0.2, np.float32)
    alpha = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    out = compose.composite(fg, alpha, bg)
    assert np.allclose(out[..., 0], 0.2 + 0.6 * alpha)
    with pytest.raises(ValueError):
        compose.composite(fg, alpha[:3], bg)


def test_cutout_rgba_bits():
    fg = np.full((3, 3, 3), 0.5, np.float32)
    alpha = np.full((3, 3), 0.25, np.float32)
    rgba8 = compose.cutout_rgba(fg, alpha)
    assert rgba8.dtype == np.uint8 and rgba8.shape == (3, 3, 4) and rgba8[0, 0, 3] == 64
    assert np.all(rgba8[:, :, :3] == 128)  # the foreground colour itself, not premultiplied
    rgba16 = compose.cutout_rgba(fg, alpha, bits=16)
    assert rgba16.dtype == np.uint16 and rgba16[0, 0, 3] == round(0.25 * 65535)
    assert np.all(rgba16[:, :, :3] == 32768)


def test_compare_picture_layout(tmp_path):
    panels = [("input", np.zeros((40, 60, 3), np.float32)), ("trimap", np.full((40, 60), 128, np.uint8)),
              ("alpha", np.ones((80, 120), np.float32))]
    picture = compare.compare_picture(panels, gap=4, label_height=20)
    # every panel is scaled to 40 px height: 60 + 60 + 60 wide, plus 4 gaps of 4
    assert picture.shape == (40 + 20 + 8, 60 * 3 + 16, 3) and picture.dtype == np.uint8
    # each panel where it belongs (4 px gap, 20 px label band): black input, grey trimap, the
    # alpha scaled from 80 x 120 to 40 x 60 still white; white gaps between them
    top = 4 + 20
    assert np.all(picture[top:top + 40, 4:64] == 0)
    assert np.all(picture[top:top + 40, 68:128] == 128)
    assert np.all(picture[top:top + 40, 132:192] == 255)
    assert np.all(picture[top:top + 40, 64:68] == 255)
    path = tmp_path / "compare.jpg"
    write_image(path, picture)
    back = np.round(read_image(path) * 255)
    assert back.shape == picture.shape and np.abs(back - picture).mean() < 3
