"""Tiled inference: the tiles reproduce the whole-image alpha, the plan respects a memory budget.

Geometry is tested on a small real Paddle network with DIM's structure (five 2x2 max-poolings
with indices, unpooling back, 3x3 convolutions: a receptive field of about 60 pixels), run through
the same engine interface as DIM (``DygraphEngine``), so that a 64-pixel margin must reproduce the
whole image exactly on images of a few hundred pixels: DIM's own receptive field (~190 px) would
need photos too large for a unit test (benchmarks/bench_large_photo.py measures DIM itself).
"""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppmatting  # noqa: F401
from ppmatting.core import val as core_val
from ppmatting.deploy.engines import DygraphEngine, EngineSpec
from ppmatting.deploy.memory import GIB, Budget, current_rss_bytes
from ppmatting.deploy.tiling import (ALIGN, DEFAULT_MARGINS, Planner, TiledMatting, TilingOptions, axis_tiles,
                                     tile_grid, tiling_options)
from ppmatting.utils.errors import InputError
from ppmatting.utils.io import write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM_CONFIG = os.path.join(ROOT, "configs", "dim", "dim-vgg16.yml")


class PoolUnpoolNet(nn.Layer):
    """Five [3x3 conv + ReLU + 2x2 max-pool with indices], then five [unpool + 3x3 conv + ReLU]
    and a 1x1 conv + sigmoid: DIM's pooling grid in a network small enough for tests."""

    def __init__(self, width=8):
        super().__init__()
        self.down = nn.LayerList([nn.Conv2D(4 if i == 0 else width, width, 3, padding=1)
                                  for i in range(5)])
        self.up = nn.LayerList([nn.Conv2D(width, width, 3, padding=1) for _ in range(5)])
        self.head = nn.Conv2D(width, 1, 1)

    def forward(self, img, trimap):
        x = paddle.concat([img, trimap / 255.0], axis=1)
        sizes, indices = [], []
        for conv in self.down:
            x = F.relu(conv(x))
            sizes.append(x.shape[2:])
            x, index = F.max_pool2d(x, 2, 2, return_mask=True)
            indices.append(index)
        for level, conv in zip(range(4, -1, -1), self.up):
            x = F.max_unpool2d(x, indices[level], 2, 2, output_size=sizes[level])
            x = F.relu(conv(x))
        return {"alpha": F.sigmoid(self.head(x))}


SPEC = EngineSpec(variant="mmediting", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                  pad_multiple=32, engine="dygraph", name="PoolUnpoolNet")


@pytest.fixture(scope="module")
def engine():
    paddle.seed(1)
    net = PoolUnpoolNet()
    net.head.weight.set_value(net.head.weight.numpy() * 8)  # alpha spread over [0, 1]
    net.eval()
    return DygraphEngine(net)


def _photo(height, width, seed=0):
    """A textured photo and a trimap with unknown regions, foreground, and a right-hand strip
    of background wide enough that some tile cores hold no unknown pixel."""
    rng = np.random.default_rng(seed)
    image01 = rng.random((height, width, 3)).astype(np.float32)
    trimap_u8 = np.zeros((height, width), np.uint8)
    trimap_u8[height // 8:7 * height // 8, width // 10:3 * width // 5] = 128
    trimap_u8[height // 3:2 * height // 3, width // 4:width // 2] = 255
    trimap_u8[5:9, width - 140:width - 135] = 0  # keep the strip free of unknown pixels
    return image01, trimap_u8


@pytest.mark.parametrize("size", [(301, 437), (256, 320), (97, 450)])
def test_tiled_equals_whole_image(engine, size):
    image01, trimap_u8 = _photo(*size)
    whole = TiledMatting(engine, SPEC, TilingOptions(tiling="off")).predict(image01, trimap_u8)
    tiled = TiledMatting(engine, SPEC, TilingOptions(tiling="on", tile_size=64, tile_margin=64,
                                                     progress=False))
    alpha01 = tiled.predict(image01, trimap_u8)
    plan = tiled.last_plan
    assert plan.mode == "tiled" and plan.skipped > 0 and len(plan.tiles) > 1
    # borders, the 32-pixel grid and odd sizes: the same alpha everywhere, known regions forced
    assert alpha01.shape == size and alpha01.dtype == np.float32
    assert np.abs(alpha01 - whole).max() <= 1e-6
    assert (alpha01[trimap_u8 == 0] == 0).all() and (alpha01[trimap_u8 == 255] == 1).all()
    unknown = trimap_u8 == 128
    assert 0.05 < alpha01[unknown].std()  # the network's output varies: the comparison means something


def test_a_margin_below_the_receptive_field_is_not_exact(engine):
    image01, trimap_u8 = _photo(301, 437)
    whole = TiledMatting(engine, SPEC, TilingOptions(tiling="off")).predict(image01, trimap_u8)
    short = TiledMatting(engine, SPEC, TilingOptions(tiling="on", tile_size=64, tile_margin=0,
                                                     progress=False)).predict(image01, trimap_u8)
    assert np.abs(short - whole)[trimap_u8 == 128].max() > 0.01


def test_cores_tile_the_image_on_the_32_pixel_grid_in_windows_of_one_shape():
    for length in (32, 96, 416, 1984, 6016):
        for max_core in (32, 128, 512, 1024, 8192):
            for margin in (0, 64, 192):
                tiles = axis_tiles(length, max_core, margin)
                cores = [core for core, _ in tiles]
                assert cores[0][0] == 0 and cores[-1][1] == length
                assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
                assert len({w1 - w0 for _, (w0, w1) in tiles}) == 1  # one window shape
                for (c0, c1), (w0, w1) in tiles:
                    assert c0 % ALIGN == 0 and c1 % ALIGN == 0 and w0 % ALIGN == 0
                    assert 0 <= w0 <= c0 < c1 <= w1 <= length
                    assert (c0 - w0 >= margin or w0 == 0) and (w1 - c1 >= margin or w1 == length)
                    inner = (c1 - c0) - (margin if c0 == 0 else 0) - (margin if c1 == length else 0)
                    assert len(tiles) == 1 or inner <= max_core
                # no more pixels than windows cut at the image edges, but for the 32-pixel grid
                cut = sum(min(length, c1 + margin) - max(0, c0 - margin) for c0, c1 in cores)
                assert sum(w1 - w0 for _, (w0, w1) in tiles) <= cut + ALIGN * len(tiles)
    tiles = tile_grid((320, 480), 64, 64)
    assert len({t.window_shape for t in tiles}) == 1 and len(tiles) == 3 * 6


def test_bad_tiling_options_are_one_line_errors():
    with pytest.raises(InputError, match="--tile_size 100: must be a positive multiple of 32"):
        TilingOptions(tile_size=100).validate()
    with pytest.raises(InputError, match="--tile_margin 50"):
        TilingOptions(tile_margin=50).validate()
    with pytest.raises(InputError, match="--tiling sometimes"):
        TilingOptions(tiling="sometimes").validate()
    # flags win over the config's test_config keys; YAML's bare `on` is a boolean
    config = {"test_config": {"tiling": True, "tile_size": 512, "tile_margin": 64}}

    class Flags:
        tiling, tile_size, tile_margin, max_memory_gb = None, 256, None, 3.0

    options = tiling_options(Flags, config)
    assert (options.tiling, options.tile_size, options.tile_margin, options.max_memory_gb) == \
        ("on", 256, 64, 3.0)


# ---- the memory plan ----------------------------------------------------------------------------
DIM_SPEC = EngineSpec(variant="mmediting", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                      pad_multiple=32, engine="paddle", precision="fp32")


def _wide_trimap(height, width):
    trimap = np.zeros((height, width), np.uint8)
    trimap[::97, :] = 128  # unknown rows all over the image: every tile has some
    return trimap


def test_the_estimate_chooses_tiles_under_a_small_budget():
    trimap = _wide_trimap(3000, 4000)
    planner = Planner(DIM_SPEC, TilingOptions().validate())
    roomy = planner.plan(trimap, Budget(64 * GIB, 0.5 * GIB, "test"))
    assert roomy.mode == "whole" and roomy.estimate_bytes < 64 * GIB
    small = Budget(3 * GIB, 0.5 * GIB, "test")
    plan = planner.plan(trimap, small)
    assert plan.mode == "tiled" and plan.estimate_bytes <= small.limit_bytes
    assert roomy.estimate_bytes > small.limit_bytes
    assert plan.skipped == 0 and plan.margin == DEFAULT_MARGINS["mmediting"]
    # a larger budget allows larger tiles, which waste less on margins
    larger = planner.plan(trimap, Budget(6 * GIB, 0.5 * GIB, "test"))
    assert larger.core > plan.core and larger.cost < plan.cost


def test_auto_tiles_a_sparse_trimap_that_fits_whole_because_it_runs_fewer_pixels():
    trimap = np.zeros((3000, 4000), np.uint8)
    trimap[200:400, 300:600] = 128  # one small unknown patch
    planner = Planner(DIM_SPEC, TilingOptions().validate())
    budget = Budget(64 * GIB, 0.5 * GIB, "test")
    plan = planner.plan(trimap, budget)
    assert plan.mode == "tiled" and plan.skipped > 0 and plan.cost < 3008 * 4000 / 4
    evaluation = Planner(DIM_SPEC, TilingOptions(prefer_whole=True).validate()).plan(trimap, budget)
    assert evaluation.mode == "whole"  # tools/val.py: whole image whenever it fits


def test_an_impossible_budget_is_a_one_line_error_with_the_estimate():
    trimap = _wide_trimap(3000, 4000)
    tiny = Budget(0.6 * GIB, 0.5 * GIB, "--max_memory_gb 0.6")
    with pytest.raises(InputError) as info:
        Planner(DIM_SPEC, TilingOptions().validate()).plan(trimap, tiny)
    message = str(info.value)
    assert "\n" not in message and "4000x3000" in message
    assert "need about" in message and "raise --max_memory_gb to at least" in message
    with pytest.raises(InputError, match="whole-image inference needs about .* --tiling auto"):
        Planner(DIM_SPEC, TilingOptions(tiling="off").validate()).plan(
            trimap, Budget(3 * GIB, 0.5 * GIB, "test"))
    with pytest.raises(InputError, match=r"tiles of 4096 px .* --tile_size \d+ fits"):
        Planner(DIM_SPEC, TilingOptions(tile_size=4096).validate()).plan(
            trimap, Budget(3 * GIB, 0.5 * GIB, "test"))


def test_unpadded_models_refuse_inexact_tiles():
    spec = EngineSpec(variant="paddleseg", mean=(0.5,) * 3, std=(0.5,) * 3, pad_multiple=1,
                      engine="paddle")
    budget = Budget(64 * GIB, 0.5 * GIB, "test")
    with pytest.raises(InputError, match="tiles cannot reproduce the whole-image alpha"):
        Planner(spec, TilingOptions(tiling="on").validate()).plan(_wide_trimap(1000, 1001), budget)
    # auto runs such a photo whole; a size on the 32-pixel grid tiles exactly
    assert Planner(spec, TilingOptions().validate()).plan(_wide_trimap(1000, 1001),
                                                          budget).mode == "whole"
    assert Planner(spec, TilingOptions(tiling="on").validate()).plan(
        _wide_trimap(1024, 992), budget).mode == "tiled"
    with pytest.raises(InputError, match="pad_multiple=32"):
        Planner(spec, TilingOptions().validate()).plan(_wide_trimap(3000, 4001),
                                                       Budget(3 * GIB, 0.5 * GIB, "test"))


# ---- the tools ------------------------------------------------------------------------------------
def test_val_tiles_only_what_does_not_fit_and_says_so(engine):
    rng = np.random.default_rng(3)
    samples = []
    for index, size in enumerate([(96, 128), (320, 320)]):
        image01, trimap_u8 = _photo(*size, seed=index)
        alpha01 = rng.random(size).astype(np.float32)
        samples.append({"name": f"img{index}", "image": image01, "alpha": alpha01,
                        "trimap": trimap_u8})
    planner = Planner(SPEC, TilingOptions(tile_size=64, tile_margin=64).validate())
    rss = current_rss_bytes()
    small = planner.estimate(96 * 128, 96 * 128, 1, Budget(0, rss, ""))
    large = planner.estimate(320 * 320, 320 * 320, 1, Budget(0, rss, ""))
    # a budget between the two whole-image estimates: the small image runs whole, the large tiles
    tiled = TiledMatting(engine, SPEC, TilingOptions(tile_size=64, tile_margin=64,
                                                     prefer_whole=True, progress=False,
                                                     max_memory_gb=(small + large) / 2 / GIB))
    summary = core_val.evaluate(tiled, samples, metrics=["sad"], progress=False)
    assert summary["num_scored"] == 2
    assert [t["name"] for t in summary["tiled"]] == ["img1"]
    text = core_val.format_markdown(summary)
    assert "1 image(s) ran in tiles because the whole image would not fit" in text
    assert "img1: 320x320: " in text and "skipped" in text


def _run(args, cwd, env=None):
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=str(cwd),
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})))


@pytest.fixture(scope="module")
def dim_photo(tmp_path_factory):
    from ppmatting.cvlibs.config import Config

    folder = tmp_path_factory.mktemp("tiling_dim")
    paddle.seed(5)
    paddle.save(Config(DIM_CONFIG).model.state_dict(), str(folder / "dim.pdparams"))
    image01, trimap_u8 = _photo(96, 200, seed=4)
    write_image(str(folder / "photo.png"), image01)
    write_image(str(folder / "photo_trimap.png"), trimap_u8)
    return folder


def test_predict_with_a_budget_no_tiling_fits_is_one_line(dim_photo):
    result = _run([os.path.join(ROOT, "tools", "predict.py"), "--config", DIM_CONFIG,
                   "--model_path", "dim.pdparams", "--image_path", "photo.png", "--trimap_path",
                   "photo_trimap.png", "--save_dir", "out", "--dygraph", "--max_memory_gb", "0.05"],
                  dim_photo)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "photo.png" in errors[0] and "need about" in errors[0]
    assert "raise --max_memory_gb to at least" in errors[0]
    assert not (dim_photo / "out").exists() or not os.listdir(dim_photo / "out")


def test_predict_tiles_dim_on_request_and_reports_skipped_tiles(dim_photo):
    result = _run([os.path.join(ROOT, "tools", "predict.py"), "--config", DIM_CONFIG,
                   "--model_path", "dim.pdparams", "--image_path", "photo.png", "--trimap_path",
                   "photo_trimap.png", "--save_dir", "tiled", "--dygraph", "--tiling", "on",
                   "--tile_size", "64", "--tile_margin", "32", "--no_rgba"], dim_photo)
    assert result.returncode == 0, result.stderr
    assert "tiling 200x96: " in result.stdout and "skipped (no unknown pixel)" in result.stdout
    assert os.listdir(dim_photo / "tiled") == ["photo_alpha.png"]


def test_tiling_flags_on_a_classical_method_say_where_its_budget_is():
    from types import SimpleNamespace

    from ppmatting.core.predict import load_matter

    config = os.path.join(ROOT, "configs", "ml", "closed_form.yml")
    flags = SimpleNamespace(tiling=None, tile_size=None, tile_margin=None, max_memory_gb=2.0)
    with pytest.raises(InputError, match="--max_memory_gb apply to networks; .* --opts "
                                         "model.max_memory_gb=GB"):
        load_matter(config, tiling_flags=flags)
    flags.max_memory_gb = None  # auto is the default for every model: nothing to say
    assert load_matter(config, tiling_flags=flags).tiler is None


def test_infer_batches_the_tiles_of_a_photo_through_the_one_batcher(tmp_path):
    """deploy/python/infer.py's loop: a photo too large for the budget runs in tiles, and tiles
    of one shape share forward calls (--batch_size)."""

    from ppmatting.core.predict import collect_jobs
    from ppmatting.core.writer import ResultWriter
    from ppmatting.deploy.export import export_static
    from ppmatting.deploy.info import build_deploy_dict, load_deploy_info, write_deploy_yaml
    from ppmatting.deploy.predictor import MattingPredictor
    from ppmatting.models.dim import dim_vgg16
    from ppmatting.utils.io import read_alpha

    paddle.seed(2)
    model = dim_vgg16()
    model.eval()
    folder = str(tmp_path / "export")
    write_deploy_yaml(folder, build_deploy_dict(model, export_static(model, folder), None))
    predictor = MattingPredictor(load_deploy_info(folder))
    calls = []

    class Counting:  # the predictor, counting the batch of every forward call
        info, options = predictor.info, predictor.options

        @staticmethod
        def run(img, trimap):
            calls.append(img.shape)
            return predictor.run(img, trimap)

    image01, trimap_u8 = _photo(96, 200, seed=6)
    write_image(str(tmp_path / "p.png"), image01)
    write_image(str(tmp_path / "p_trimap.png"), trimap_u8)
    from script_loader import load_script

    infer = load_script("deploy/python/infer.py")
    jobs = collect_jobs(str(tmp_path / "p.png"), str(tmp_path / "p_trimap.png"))
    options = TilingOptions(tiling="on", tile_size=64, tile_margin=32, progress=False)
    written = infer.run(Counting, jobs, ResultWriter(str(tmp_path / "out"), fg_estimate=False),
                        batch_size=2, tiling=options, log=lambda line: None)
    alpha01 = read_alpha(written["p"]["alpha"])
    assert alpha01.shape == (96, 200) and (alpha01[trimap_u8 == 255] == 1).all()
    # one row of 3 cores across the padded 224 px, windows 96x128; the right core has no unknown
    # pixel: 2 tiles, run in one call of 2
    assert calls == [(2, 3, 96, 128)]
