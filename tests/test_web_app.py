"""The web app's functions on their own (no server, no Gradio): trimaps from brush layers,
scribbles and a painted mask, reading uploads, the model list, one request end to end."""
import os

import cv2
import numpy as np
import pytest

from ppmatting.apps import web_matting as wm
from ppmatting.apps import web_trimap as wt
from ppmatting.transforms.trimap import trimap_from_mask
from ppmatting.utils.errors import InputError
from ppmatting.utils.io import read_image, read_trimap, write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "matting_demo", "demo")
SIZE = (72, 96)  # H, W


def layer(strokes, size=SIZE, soft_edges=True):
    """An RGBA brush layer as Gradio's ImageEditor returns it: opaque strokes of a brush colour on
    a transparent layer, with a half-transparent rim like an antialiased stroke edge."""
    rgba = np.zeros(size + (4,), np.uint8)
    for color, (x0, y0, x1, y1) in strokes:
        rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
        if soft_edges:  # on transparent pixels only: a rim does not erase earlier paint
            rim = rgba[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1]
            rim[rim[:, :, 3] == 0] = rgb + [90]
        rgba[y0:y1, x0:x1] = rgb + [255]
    return rgba


# ---- trimaps from brushes -------------------------------------------------------------------------
def test_painted_trimap_maps_each_brush_and_fills_unpainted_pixels():
    strokes = [(wt.FOREGROUND_BRUSH, (30, 20, 60, 50)), (wt.UNKNOWN_BRUSH, (10, 10, 30, 60)),
               (wt.BACKGROUND_BRUSH, (70, 0, 96, 72))]
    painted = layer(strokes)
    # an antialiased stroke pixel: nearly the colour, nearly opaque
    painted[40, 45] = [250, 248, 251, 200]
    trimap = wt.trimap_from_paint([painted], SIZE, unpainted="background")
    assert trimap.dtype == np.uint8 and trimap.shape == SIZE
    assert (trimap[20:50, 30:60] == 255).all()
    assert (trimap[10:60, 10:30] == 128).all()
    assert (trimap[:, 70:] == 0).all()
    # the soft rim (alpha 90 < 128) is not paint: it stays "unpainted"
    assert trimap[19, 45] == 0 and trimap[0, 0] == 0
    as_unknown = wt.trimap_from_paint([painted], SIZE, unpainted="unknown")
    assert as_unknown[0, 0] == 128 and as_unknown[19, 45] == 128
    assert (as_unknown[:, 70:] == 0).all() and (as_unknown[20:50, 30:60] == 255).all()


def test_later_layer_and_later_stroke_win():
    bottom = layer([(wt.FOREGROUND_BRUSH, (0, 0, 96, 72))])
    top = layer([(wt.BACKGROUND_BRUSH, (0, 0, 48, 72))], soft_edges=False)
    trimap = wt.trimap_from_paint([bottom, top], SIZE)
    assert (trimap[:, :48] == 0).all() and (trimap[:, 48:] == 255).all()


def test_nothing_painted_and_bad_layers_are_clear_errors():
    empty = np.zeros(SIZE + (4,), np.uint8)
    with pytest.raises(InputError, match="nothing is painted"):
        wt.trimap_from_paint([empty], SIZE)
    with pytest.raises(InputError, match="nothing is painted"):
        wt.trimap_from_paint(None, SIZE)
    with pytest.raises(InputError, match="RGBA"):
        wt.trimap_from_paint([np.zeros(SIZE + (3,), np.uint8)], SIZE)
    with pytest.raises(InputError, match="unpainted"):
        wt.trimap_from_paint([layer([(wt.FOREGROUND_BRUSH, (0, 0, 5, 5))])], SIZE, "maybe")


def test_layer_of_another_size_is_rescaled_or_refused():
    # the same picture at half size (a scaled canvas): strokes land on the same places
    half = layer([(wt.FOREGROUND_BRUSH, (15, 10, 30, 25))], size=(36, 48), soft_edges=False)
    trimap = wt.trimap_from_paint([half], SIZE)
    assert (trimap[20:50, 30:60] == 255).all() and trimap[:20].max() == 0
    other_aspect = layer([(wt.FOREGROUND_BRUSH, (0, 0, 5, 5))], size=(72, 72))
    with pytest.raises(InputError, match="72x72 picture but the photo is 96x72"):
        wt.trimap_from_paint([other_aspect], SIZE)


def test_scribbles_leave_everything_else_unknown():
    strokes = [(wt.FOREGROUND_BRUSH, (40, 30, 50, 40)), (wt.BACKGROUND_BRUSH, (0, 0, 8, 8))]
    trimap = wt.trimap_from_scribbles([layer(strokes)], SIZE)
    assert (trimap[30:40, 40:50] == 255).all() and (trimap[:8, :8] == 0).all()
    assert (trimap == 128).sum() == SIZE[0] * SIZE[1] - 100 - 64
    only_fg = layer([(wt.FOREGROUND_BRUSH, (40, 30, 50, 40))])
    with pytest.raises(InputError, match=r"no background \(black\) stroke"):
        wt.trimap_from_scribbles([only_fg], SIZE)


def test_painted_mask_band_is_make_trimaps_rule():
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    disc = (yy - 36) ** 2 + (xx - 48) ** 2 < 20 ** 2
    painted = np.zeros(SIZE + (4,), np.uint8)
    painted[disc] = [255, 61, 127, 255]  # the mask brush
    for width in (3, 8):
        trimap = wt.trimap_from_painted_mask([painted], SIZE, width)
        np.testing.assert_array_equal(trimap, trimap_from_mask(disc.astype(np.uint8) * 255, width))
    narrow = (wt.trimap_from_painted_mask([painted], SIZE, 3) == 128).sum()
    wide = (wt.trimap_from_painted_mask([painted], SIZE, 8) == 128).sum()
    assert wide > 2 * narrow
    with pytest.raises(InputError, match="at least 1 pixel"):
        wt.trimap_from_painted_mask([painted], SIZE, 0)
    with pytest.raises(InputError, match="nothing is painted"):
        wt.trimap_from_painted_mask([np.zeros_like(painted)], SIZE, 5)


def test_trimap_overlay_keeps_the_subject_and_marks_the_rest():
    image01 = np.full(SIZE + (3,), 0.5, np.float32)
    trimap = np.zeros(SIZE, np.uint8)
    trimap[:, 30:60] = 128
    trimap[:, 60:] = 255
    view = wt.trimap_overlay(image01, trimap)
    assert view.dtype == np.uint8 and view.shape == SIZE + (3,)
    assert tuple(view[0, 70]) == (128, 128, 128)       # subject: the photo
    assert tuple(view[0, 10]) == (38, 38, 38)          # background: 30 %
    assert tuple(view[0, 40]) == (191, 134, 64)        # unknown: half orange


# ---- uploads --------------------------------------------------------------------------------------
def test_build_trimap_from_uploads_checks_size_and_content(tmp_path):
    trimap = np.zeros(SIZE, np.uint8)
    trimap[20:50, 30:60] = 128
    trimap[30:40, 40:50] = 255
    good = str(tmp_path / "good_trimap.png")
    write_image(good, trimap)
    np.testing.assert_array_equal(wm.build_trimap("upload", SIZE, trimap_path=good), trimap)
    with pytest.raises(InputError, match=r"size mismatch: the photo is 80x60 \(WxH\) but "
                                         r"good_trimap.png is 96x72"):
        wm.build_trimap("upload", (60, 80), trimap_path=good)
    no_unknown = str(tmp_path / "binary.png")
    write_image(no_unknown, np.where(trimap == 255, 255, 0).astype(np.uint8))
    with pytest.raises(InputError, match="binary.png has no unknown"):
        wm.build_trimap("upload", SIZE, trimap_path=no_unknown)
    all_gray = str(tmp_path / "gray.png")
    write_image(all_gray, np.full(SIZE, 128, np.uint8))
    with pytest.raises(InputError, match="gray.png has no known pixels"):
        wm.build_trimap("upload", SIZE, trimap_path=all_gray)
    with pytest.raises(InputError, match="no trimap uploaded"):
        wm.build_trimap("upload", SIZE)
    # an uploaded mask becomes make_trimap's band
    mask = str(tmp_path / "mask.png")
    write_image(mask, (trimap > 0).astype(np.uint8) * 255)
    np.testing.assert_array_equal(
        wm.build_trimap("mask", SIZE, mask_path=mask, unknown_width=4),
        trimap_from_mask((trimap > 0).astype(np.uint8) * 255, 4))


def test_read_photo_formats_and_refusals(tmp_path):
    rgb8 = (np.random.default_rng(0).random(SIZE + (3,)) * 255).astype(np.uint8)
    rgba16 = np.concatenate([rgb8.astype(np.uint16) * 257,
                             np.full(SIZE + (1,), 30000, np.uint16)], axis=2)
    path16 = str(tmp_path / "photo16.png")
    write_image(path16, rgba16)
    image01 = wm.read_photo(path16)
    assert image01.shape == SIZE + (3,)
    np.testing.assert_allclose(image01, rgb8 / 255.0, atol=1e-6)  # alpha channel dropped
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(InputError, match=r"^notes.png: not a readable image"):
        wm.read_photo(str(text))
    big = str(tmp_path / "big.png")
    cv2.imwrite(big, np.zeros((300, 400), np.uint8))
    with pytest.raises(InputError, match=r"big.png: 400x300 pixels is larger than this app's "
                                         r"limit of 0.1 megapixels"):
        wm.read_photo(big, max_pixels=100_000)
    with pytest.raises(InputError, match="no photo"):
        wm.read_photo(None)


def test_background_from_page():
    assert wm.background_from_page("colour", "#1e90ff").color01 == pytest.approx(
        (30 / 255, 144 / 255, 1.0))
    assert wm.background_from_page("colour", "rgba(30, 144, 255, 1)").color01 == pytest.approx(
        (30 / 255, 144 / 255, 1.0))
    assert wm.background_from_page("blurred photo", blur_sigma=8).sigma == 8
    picture = wm.background_from_page("picture",
                                      picture_path=os.path.join(DEMO, "new_background.jpg"))
    assert picture.kind == "image" and picture.image01.ndim == 3
    with pytest.raises(InputError, match="upload a picture"):
        wm.background_from_page("picture")


# ---- the model list -------------------------------------------------------------------------------
def test_model_choices_default_zoo_and_dim_only_with_weights(tmp_path):
    choices, default = wm.model_choices()
    assert default == "closed-form"
    assert list(choices) == [label for label, _ in wm.ZOO_CONFIGS]
    assert not any("DIM" in label for label in choices)
    closed_form = choices["closed-form"]
    assert closed_form.classical
    assert closed_form.defaults == {"epsilon": 1e-7, "radius": 1, "solve_scale": 1.0}
    assert [p.key for p in choices["KNN"].params] == ["n_neighbors.0", "solve_scale"]
    assert choices["large kernel"].defaults["radius"] == 10

    choices, default = wm.model_choices(config_path=os.path.join(ROOT, "configs/ml/knn.yml"))
    assert default == "KNN" and len(choices) == len(wm.ZOO_CONFIGS)

    weights = tmp_path / "my_dim.pdparams"
    weights.write_bytes(b"not read until the model is loaded")
    choices, default = wm.model_choices(model_path=str(weights))
    assert default == "DIM (my_dim.pdparams)"
    dim = choices[default]
    assert not dim.classical and dim.params == [] and dim.model_path == str(weights)
    assert dim.config_path.endswith(os.path.join("configs", "dim", "dim-vgg16.yml"))
    # a network gets no classical keys
    assert dim.opts({}, max_memory_gb=2, max_pixels=1000) == []
    with pytest.raises(InputError, match="not found"):
        wm.model_choices(model_path=str(tmp_path / "missing.pdparams"))


def test_model_opts_change_the_loaded_model():
    choices, _ = wm.model_choices()
    knn = choices["KNN"]
    opts = knn.opts({"n_neighbors.0": 15.0, "solve_scale": 1.0}, max_memory_gb=3)
    assert opts == ["model.n_neighbors.0=15", "model.max_memory_gb=3.0"]
    cache = wm.MatterCache()
    model = cache.get(knn, opts).model
    assert list(model.n_neighbors) == [15, 10] and model.max_memory_gb == 3.0
    assert cache.get(knn, opts) is cache.get(knn, opts)
    with pytest.raises(InputError, match="solve scale must be between 0.1 and 1"):
        choices["closed-form"].opts({"solve_scale": 1.5})


# ---- one request ----------------------------------------------------------------------------------
@pytest.fixture
def demo_crop():
    """A 96 x 96 crop of the demo photo around the subject's edge, with its trimap."""
    image01 = read_image(os.path.join(DEMO, "demo.png"))[252:348, 204:300]
    trimap_u8 = read_trimap(os.path.join(DEMO, "demo_trimap.png"))[252:348, 204:300]
    assert (trimap_u8 == 128).any() and (trimap_u8 == 0).any() and (trimap_u8 == 255).any()
    return image01, trimap_u8


def test_matte_request_writes_what_the_tools_write(tmp_path, demo_crop):
    from ppmatting.core.predict import load_matter
    from ppmatting.core.writer import ResultWriter
    from ppmatting.utils.io import read_alpha

    image01, trimap_u8 = demo_crop
    choices, default = wm.model_choices()
    results = wm.ResultFolders(tmp_path / "results")
    background = wm.background_from_page("colour", "#1e90ff")
    steps = []
    result = wm.matte_request("uploads/my photo.png", image01, trimap_u8, choices[default], [],
                              background, results, wm.MatterCache(),
                              report=lambda f, text: steps.append(f))
    assert steps == sorted(steps) and len(steps) >= 3
    names = {k: os.path.basename(p) for k, p in result.paths.items()}
    assert names["alpha"] == "my_photo_alpha.png" and names["rgba"] == "my_photo_rgba.png"
    assert names["trimap"] == "my_photo_trimap.png"
    assert all(os.path.dirname(p).startswith(str(tmp_path / "results"))
               for p in result.paths.values())
    # the same alpha and cut-out as tools/predict.py's code path
    expected01 = load_matter(os.path.join(ROOT, "configs/ml/closed_form.yml")).matte(
        image01, trimap_u8)
    np.testing.assert_allclose(read_alpha(result.paths["alpha"]), expected01,
                               atol=0.5 / 255 + 1e-6)
    reference = ResultWriter(str(tmp_path / "ref"))
    ref_items, _ = reference.render("x", image01, expected01, trimap_u8)
    np.testing.assert_array_equal(cv2.imread(result.paths["rgba"], cv2.IMREAD_UNCHANGED),
                                  cv2.cvtColor(dict(ref_items)[reference.paths("x")["rgba"]],
                                               cv2.COLOR_RGBA2BGRA))
    np.testing.assert_array_equal(read_trimap(result.paths["trimap"]), trimap_u8)
    # the composite is the picked blue where the trimap says background
    n_bg = int((trimap_u8 == 0).sum())
    composite = read_image(next(p for k, p in result.paths.items() if k.startswith("on ")))
    np.testing.assert_allclose(composite[trimap_u8 == 0],
                               np.broadcast_to(np.array([30, 144, 255]) / 255, (n_bg, 3)),
                               atol=1e-6)
    assert result.cutout_view_u8.shape == (96, 96, 3) and result.composite_u8.dtype == np.uint8
    assert "96 x 96 px" in result.summary and "ClosedFormMatting" in result.summary


def test_matte_request_over_the_memory_budget_says_what_to_do(tmp_path, demo_crop):
    image01, trimap_u8 = demo_crop
    choices, default = wm.model_choices()
    choice = choices[default]
    results = wm.ResultFolders(tmp_path / "results")
    with pytest.raises(InputError, match=r"a 96x96 image with \d+ unknown pixels needs about "
                                         r"0.2 GiB, more than the 0.1 GiB allowed"):
        wm.matte_request("p.png", image01, trimap_u8, choice, choice.opts({}, 0.15),
                         wm.background_from_page("colour"), results, wm.MatterCache())
    assert not os.listdir(tmp_path / "results")  # nothing written for a refused request
    # where a smaller solve fits, the refusal names --opts model.solve_scale: the page adds its
    # slider
    refusal = InputError("... set solve_scale: 0.5 (e.g. --opts model.solve_scale=0.5) ...")
    assert wm.memory_hint(refusal).endswith("(on this page: the 'solve scale' slider under Model)")
    assert wm.memory_hint(InputError("use a smaller image")) == "use a smaller image"


def test_result_folders_keep_only_the_last_few(tmp_path):
    folders = wm.ResultFolders(tmp_path, keep=3)
    made = []
    for i in range(5):
        made.append(folders.new())
        os.utime(made[-1], (1000 + i, 1000 + i))
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in made[-3:])


# ---- tools/web_app.py's own checks (before anything starts) ---------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--scribble_pixels", "5"], "error: --scribble_pixels 5: expected 20,000 to 1,000,000"),
    (["--model_path", "no_such_weights.pdparams"],
     "error: no_such_weights.pdparams: --model_path not found"),
    (["--port", "70000"], "error: --port 70000: expected 1-65535"),
    (["--opts", "model.epsilon=1e-6"], "error: --opts is not taken here"),
])
def test_web_app_tool_refuses_bad_flags_in_one_line(argv, message, capsys):
    from script_loader import load_script

    tool = load_script("tools/web_app.py")
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(message)
