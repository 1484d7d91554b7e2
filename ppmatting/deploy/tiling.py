"""DIM on photos of any size: whole-image or trimap-guided tiled inference within a memory budget.

:class:`TiledMatting` wraps any engine with ``run(img, trimap) -> alpha``
(:mod:`ppmatting.deploy.engines`) and gives it the zoo call shape
``alpha01 = tiled.predict(image01, trimap_u8)``. For each photo it first makes a :class:`Plan`:

* **whole image**: ``ppmatting.models.dim.preprocess`` (normalise, pad to ``pad_multiple``), one
  forward pass, ``postprocess`` (crop, clamp, force the known trimap regions): what
  ``DIM.predict`` does;
* **tiles**: the padded image is cut into a grid of *cores* whose edges lie on multiples of 32
  pixels in image coordinates, so every tile sees the same 2x2 max-pooling grid as the whole
  image (five poolings: 32). Each core is run inside a *window* that adds at least
  ``tile_margin`` pixels of context on every side, or reaches the image border there (where the
  whole-image pass has the same zero padding of its convolutions), and only the core is kept: no
  blending. All windows have one shape (the cores at the image's edges are larger by one margin
  instead of their windows being cut): Paddle Inference keeps oneDNN kernels and buffers for
  every input shape it has run (about the activation memory of each shape, kept), so one shape
  keeps memory at one window's worth. A core without an
  unknown trimap pixel is not run: its alpha is the trimap's (the post-processing forces it
  there anyway). Windows of one shape are batched through
  :class:`~ppmatting.deploy.batching.ShapeBatcher`.

Tiles reproduce the whole-image alpha when the margin covers the network's receptive field,
counted from the layers (each k x k convolution at stride-product j widens it by (k - 1) j, a
2 x 2 pooling by j, a 2x bilinear upsampling by the coarse j):

* the paper's DIM (mmediting): VGG16's 13 convolutions and 5 poolings 212 px, the decoder's six
  5 x 5 convolutions after unpooling 128, the refiner's four 3 x 3 convolutions 8: 348 px wide,
  174 on each side. Margin 192, the next multiple of 32, is the default; measured on a
  2048x1536 photo with 512-pixel cores (``benchmarks/bench_large_photo.py --margins``; the
  table is in docs/deploy.md, "Large photos"): margin 128 leaves tiled and whole alphas up to
  40/255 apart over the unknown pixels, 160 up to 0.2/255, 192 identical;
* PaddleSeg's DIM: the encoder with its 3 x 3 ``conv6`` 276 px, the decoder's bilinear
  upsamplings and 5 x 5 convolutions 190, the refiner 8: 474 px wide, 237 on each side; margin 256.

Cores are stitched without blending: with a margin that covers the receptive field the cores are
exact, and the same measurement shows linear blending across the overlaps only mixing in the
less exact window edges (margin 192: blended up to 16/255 off, cores alone 0).

When tiles cannot be exact: the whole-image pass of a model run unpadded (``pad_multiple: 1``,
PaddleSeg's procedure) on a size that is not a multiple of 32 floors the size at each pooling and
resizes (or unpools) to sizes that depend on the whole image, so its feature grids are not those
of any tile. Tiling is then refused with that reason; the whole image still runs when it fits.

The plan (``auto``): estimate the peak memory of the whole-image pass and of tiled passes
(:mod:`ppmatting.deploy.memory`); run the whole image when it fits and is not slower than the
best tiling that fits (time ~ pixels run; skipped cores cost nothing, margins cost their area),
else the tiling that fits and runs the fewest pixels. ``on`` always tiles, ``off`` never does;
either way a plan that does not fit the budget is a one-line :class:`InputError` with the
estimate and the setting that fits.
"""
import math
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ppmatting.deploy.batching import ShapeBatcher
from ppmatting.deploy.memory import Budget, engine_figure, estimate_peak, largest_window_pixels
from ppmatting.utils.memory import format_bytes
from ppmatting.utils.errors import InputError

TILING_MODES = ("auto", "on", "off")
ALIGN = 32  # 2 ** (number of 2x2 poolings)
# Default margin per DIM variant: the multiple of 32 above half the receptive field's width
# (module docstring; docs/deploy.md, "Large photos"). Other networks get the largest.
DEFAULT_MARGINS = {"mmediting": 192, "paddleseg": 256}
DEFAULT_MARGIN = max(DEFAULT_MARGINS.values())
MIN_CORE = 128
# A forward call costs about this many pixels' worth of time beyond its area (oneDNN primitive
# lookup, reorders, Python); it keeps ``auto`` from preferring many tiny tiles.
PER_RUN_PIXELS = 64 * 1024


def _align_up(value, multiple=ALIGN):
    return int(math.ceil(value / multiple) * multiple)


# ---- options -------------------------------------------------------------------------------------
@dataclass
class TilingOptions:
    """How photos are run (the flags ``--tiling --tile_size --tile_margin --max_memory_gb`` and the
    config keys ``test_config.tiling`` etc. of the same names).

    tiling: ``auto``, ``on`` or ``off``. tile_size: largest core side in pixels (a multiple of
    32); None lets the plan choose. tile_margin: context on each side of a core (a multiple of
    32); None: the variant's default (:data:`DEFAULT_MARGINS`). max_memory_gb: the peak RSS
    allowed; None = the default budget (:class:`~ppmatting.deploy.memory.Budget`). batch_size:
    windows per forward call.
    prefer_whole: with ``auto``, tile only when the whole image does not fit (evaluation).
    progress: a tqdm bar over the tiles.
    """
    tiling: str = "auto"
    tile_size: Optional[int] = None
    tile_margin: Optional[int] = None
    max_memory_gb: Optional[float] = None
    batch_size: int = 1
    prefer_whole: bool = False
    progress: bool = True

    def validate(self):
        if self.tiling not in TILING_MODES:
            raise InputError(f"--tiling {self.tiling}: expected one of {', '.join(TILING_MODES)}")
        self.tile_size = _number("--tile_size", self.tile_size, int)
        if self.tile_size is not None and (self.tile_size < ALIGN or self.tile_size % ALIGN):
            raise InputError(f"--tile_size {self.tile_size}: must be a positive multiple of "
                             f"{ALIGN} (tile edges must lie on the pooling grid), e.g. "
                             f"{max(ALIGN, _align_up(self.tile_size))}")
        self.tile_margin = _number("--tile_margin", self.tile_margin, int)
        if self.tile_margin is not None and (self.tile_margin < 0 or self.tile_margin % ALIGN):
            raise InputError(f"--tile_margin {self.tile_margin}: must be a multiple of {ALIGN} "
                             f"(>= 0), e.g. {DEFAULT_MARGIN}")
        self.max_memory_gb = _number("--max_memory_gb", self.max_memory_gb, float)
        if self.max_memory_gb is not None and not self.max_memory_gb > 0:
            raise InputError(f"--max_memory_gb {self.max_memory_gb}: must be a positive number")
        self.batch_size = _number("batch size", self.batch_size, int)
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        return self


def _number(name, value, kind):
    """``value`` as ``kind`` (None stays None); a one-line InputError for anything else."""
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or (kind is int and number != float(value)):
        raise InputError(f"{name}: expected {'an integer' if kind is int else 'a number'}, got "
                         f"{value!r}")
    return number


CONFIG_SECTION = "test_config"
OPTION_KEYS = ("tiling", "tile_size", "tile_margin", "max_memory_gb")


def tiling_options(flags=None, config=None, **fixed):
    """:class:`TilingOptions` from, in increasing priority: the defaults, the config's
    ``test_config`` keys of the same names (``config`` is the parsed config mapping), the flags
    (an argparse namespace; None values count as not given) and ``fixed`` keywords."""
    from ppmatting.utils.errors import ConfigError

    values = {}
    section = (config or {}).get(CONFIG_SECTION) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{CONFIG_SECTION}: expected a mapping of prediction settings, got "
                          f"{section!r}")
    for key in OPTION_KEYS:
        if section.get(key) is not None:
            values[key] = section[key]
        if flags is not None and getattr(flags, key, None) is not None:
            values[key] = getattr(flags, key)
    if isinstance(values.get("tiling"), bool):  # YAML reads a bare on / off as a boolean
        values["tiling"] = "on" if values["tiling"] else "off"
    values.update(fixed)
    return TilingOptions(**values).validate()


# ---- the grid ------------------------------------------------------------------------------------
def axis_tiles(length, max_core, margin):
    """Cores and windows along one axis of ``length`` pixels (a multiple of 32).

    Returns ``[((core_start, core_end), (window_start, window_end)), ...]``: the cores tile
    ``[0, length)`` on the 32-pixel grid; every window has the same size and holds its core with
    at least ``margin`` pixels on each side or reaches the edge there. A window as large as the
    axis is one tile. Otherwise the length minus the two edge margins is split into the fewest
    parts of at most ``max_core`` pixels, as equal as the grid allows; each part plus a margin on
    each side is a window, and the two edge cores also take the edge margin (the window needs no
    context beyond the edge). So all windows share one shape and run no more pixels than windows
    cut at the edges would (but for up to 32 per window where the parts differ by a grid step).
    """
    if length <= max_core + 2 * margin:
        return [((0, length), (0, length))]
    units = (length - 2 * margin) // ALIGN
    count = math.ceil(units / max(1, max_core // ALIGN))
    base, extra = divmod(units, count)
    parts = [(base + (1 if index < extra else 0)) * ALIGN for index in range(count)]
    window = max(parts) + 2 * margin
    tiles, start = [], margin
    for index, part in enumerate(parts):
        core = (0 if index == 0 else start, length if index == count - 1 else start + part)
        origin = min(max(0, start - margin), length - window)
        tiles.append((core, (origin, origin + window)))
        start += part
    return tiles


@dataclass(frozen=True)
class Tile:
    """One core and its window, (y0, y1, x0, x1) each, in padded-image coordinates."""
    core: Tuple[int, int, int, int]
    window: Tuple[int, int, int, int]

    @property
    def window_shape(self):
        y0, y1, x0, x1 = self.window
        return y1 - y0, x1 - x0

    @property
    def window_pixels(self):
        height, width = self.window_shape
        return height * width


def tile_grid(padded_hw, max_core, margin):
    """All tiles covering a padded image of ``padded_hw`` = (Hp, Wp), multiples of 32
    (:func:`axis_tiles` along each axis). Every window has the same shape: one set of oneDNN
    kernels and buffers (Paddle Inference keeps them per input shape it has run), and tiles can
    be batched."""
    height, width = padded_hw
    return [Tile((cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1))
            for (cy0, cy1), (wy0, wy1) in axis_tiles(height, max_core, margin)
            for (cx0, cx1), (wx0, wx1) in axis_tiles(width, max_core, margin)]


class UnknownIndex:
    """Answers "does this core hold an unknown pixel?" in O(1) from a summed-area table of the
    trimap's unknown pixels counted per 32 x 32 block."""

    def __init__(self, trimap_u8, padded_hw):
        height, width = trimap_u8.shape
        blocks_y, blocks_x = padded_hw[0] // ALIGN, padded_hw[1] // ALIGN
        unknown = np.zeros((blocks_y * ALIGN, blocks_x * ALIGN), np.bool_)
        unknown[:height, :width] = trimap_u8 == 128
        counts = unknown.reshape(blocks_y, ALIGN, blocks_x, ALIGN).sum(axis=(1, 3))
        self.table = np.zeros((blocks_y + 1, blocks_x + 1), np.int64)
        self.table[1:, 1:] = counts.cumsum(0).cumsum(1)
        self.total = int(self.table[-1, -1])

    def any_in(self, core):
        y0, y1, x0, x1 = (v // ALIGN for v in core)
        table = self.table
        return bool(table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0] > 0)


# ---- the plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    """How one photo runs. ``mode`` is ``whole`` or ``tiled``; ``tiles`` are the tiles to run
    (one whole-image "tile" in whole mode); ``skipped`` counts cores without unknown pixels."""
    mode: str
    size: Tuple[int, int]
    padded: Tuple[int, int]
    estimate_bytes: float
    budget: Budget
    batch: int = 1
    core: Optional[int] = None
    margin: int = 0
    tiles: List[Tile] = field(default_factory=list)
    skipped: int = 0
    cost: float = 0.0
    reason: str = ""

    @property
    def total_tiles(self):
        return len(self.tiles) + self.skipped

    def describe(self):
        height, width = self.size
        if self.mode == "whole":
            return (f"{width}x{height}: whole image, estimated peak {format_bytes(self.estimate_bytes)}"
                    f" of {format_bytes(self.budget.limit_bytes)}" +
                    (f" ({self.reason})" if self.reason else ""))
        largest = max((t.window_shape for t in self.tiles), default=(0, 0), key=lambda s: s[0] * s[1])
        return (f"{width}x{height}: {self.total_tiles} tiles (cores up to {self.core} px, margin "
                f"{self.margin} px, windows {largest[1]}x{largest[0]}), {len(self.tiles)} to "
                f"run, {self.skipped} skipped (no unknown pixel); estimated peak "
                f"{format_bytes(self.estimate_bytes)} of {format_bytes(self.budget.limit_bytes)}"
                + (f" ({self.reason})" if self.reason else ""))

    def as_dict(self):
        return {"mode": self.mode, "tiles_run": len(self.tiles), "tiles_skipped": self.skipped,
                "tile_size": self.core, "tile_margin": self.margin if self.mode == "tiled" else None,
                "estimate_bytes": self.estimate_bytes, "budget_bytes": self.budget.limit_bytes}


def padded_size(height, width, pad_multiple):
    return _align_up(height, pad_multiple), _align_up(width, pad_multiple)


def tiling_exact(padded_hw):
    """Tiles reproduce the whole image only when the padded size is on the 32-pixel grid."""
    return padded_hw[0] % ALIGN == 0 and padded_hw[1] % ALIGN == 0


def _run_cost(pixels):
    return float(pixels) + PER_RUN_PIXELS


class Planner:
    """Makes :class:`Plan` s for one engine (its :class:`~ppmatting.deploy.engines.EngineSpec`)
    under :class:`TilingOptions`."""

    def __init__(self, spec, options):
        self.spec = spec
        self.options = options
        self.figure = engine_figure(spec.variant, spec.engine, spec.precision)
        self.margin = (options.tile_margin if options.tile_margin is not None else
                       DEFAULT_MARGINS.get(spec.variant, DEFAULT_MARGIN))

    def estimate(self, image_pixels, window_pixels, batch, budget):
        """Peak RSS (bytes) for photos of ``image_pixels`` (all held at once) run through
        windows of ``window_pixels``, ``batch`` per call."""
        return estimate_peak(self.figure, image_pixels, window_pixels, batch, budget.rss_bytes)

    def _tiled(self, size, padded, core, tiles, unknown, budget):
        """The tiled plan over ``tiles`` (cores up to ``core`` px inside the edge margins), or
        None when it does not fit ``budget``."""
        run = [t for t in tiles if unknown.any_in(t.core)]
        window = max(t.window_pixels for t in tiles)
        image_pixels = size[0] * size[1]
        batch = self.options.batch_size
        estimate = self.estimate(image_pixels, window, batch, budget)
        if estimate > budget.limit_bytes and batch > 1:
            batch = 1
            estimate = self.estimate(image_pixels, window, 1, budget)
        if estimate > budget.limit_bytes:
            return None
        return Plan("tiled", size, padded, estimate, budget, batch=batch, core=core,
                    margin=self.margin, tiles=run, skipped=len(tiles) - len(run),
                    cost=sum(_run_cost(t.window_pixels) for t in run))

    def _grids(self, padded):
        """Tile grids to consider: the one ``tile_size`` asks for, else one per distinct
        (rows, columns) count for cores from MIN_CORE up to one tile."""
        margin = self.margin
        if self.options.tile_size is not None:
            return [(self.options.tile_size, tile_grid(padded, self.options.tile_size, margin))]
        grids, seen = [], set()
        for core in range(MIN_CORE, max(padded) + ALIGN, ALIGN):
            grid = tile_grid(padded, core, margin)
            layout = tuple(t.window for t in grid)
            if layout not in seen:
                seen.add(layout)
                grids.append((core, grid))
        return grids

    def _best_tiled(self, size, padded, unknown, budget):
        """The fitting tiled plan that runs the fewest pixels, or None."""
        best = None
        for core, tiles in self._grids(padded):
            plan = self._tiled(size, padded, core, tiles, unknown, budget)
            if plan is not None and (best is None or plan.cost < best.cost):
                best = plan
        return best

    def plan(self, trimap_u8, budget=None):
        """The :class:`Plan` for a photo with this trimap (uint8 H x W)."""
        options = self.options
        budget = budget or Budget.from_option(options.max_memory_gb)
        height, width = trimap_u8.shape
        size = (height, width)
        padded = padded_size(height, width, self.spec.pad_multiple)
        whole_estimate = self.estimate(height * width, padded[0] * padded[1], 1, budget)
        whole = Plan("whole", size, padded, whole_estimate, budget,
                     tiles=[Tile((0, padded[0], 0, padded[1]), (0, padded[0], 0, padded[1]))],
                     cost=_run_cost(padded[0] * padded[1]))
        whole_fits = whole_estimate <= budget.limit_bytes
        what = f"{self.spec.describe()} on a {width}x{height} photo"
        whole_text = (f"whole-image inference needs about {format_bytes(whole_estimate)}, more "
                      f"than the {budget.describe()}")
        if options.tiling == "off" and whole_fits:
            return whole
        if not tiling_exact(padded):
            if options.tiling != "on" and whole_fits:
                whole.reason = "tiles would not be exact for this model"
                return whole
            why = (f"tiles cannot reproduce the whole-image alpha: the model runs unpadded "
                   f"(pad_multiple {self.spec.pad_multiple}) and {width}x{height} is not a "
                   f"multiple of 32, so its poolings floor the size and its decoder resizes to "
                   f"sizes set by the whole image")
            raise InputError(f"{what}: " + (f"{why}; use --tiling auto" if whole_fits else
                             f"{whole_text}, and {why}; raise --max_memory_gb, or pad to 32 "
                             f"(--opts model.pad_multiple=32) so that tiles are exact"))
        if options.tiling == "auto" and whole_fits and options.prefer_whole:
            return whole
        unknown = UnknownIndex(trimap_u8, padded)
        tiled = self._best_tiled(size, padded, unknown, budget)
        if options.tiling == "off":
            raise InputError(f"{what}: {whole_text}; " + (
                "--tiling auto runs it in tiles within the budget" if tiled is not None else
                "raise --max_memory_gb"))
        if options.tiling == "auto" and whole_fits and (tiled is None or whole.cost <= tiled.cost):
            return whole
        if tiled is None:
            raise InputError(self._no_tiling_fits(what, size, padded, unknown, budget))
        if options.tiling == "auto" and not whole_fits:
            tiled.reason = f"the whole image would need about {format_bytes(whole_estimate)}"
        return tiled

    def _no_tiling_fits(self, what, size, padded, unknown, budget):
        """The one-line message when no tiling fits the budget, with the setting that does."""
        options = self.options
        asked = options.tile_size or MIN_CORE
        unlimited = Budget(float("inf"), budget.rss_bytes, "")
        need = self._tiled(size, padded, asked, tile_grid(padded, asked, self.margin), unknown,
                           unlimited).estimate_bytes
        tiles = f"tiles of {asked} px" if options.tile_size else f"even {asked} px tiles"
        text = (f"{what}: {tiles} with a {self.margin} px margin need about {format_bytes(need)}, "
                f"more than the {budget.describe()}; ")
        if options.tile_size:
            pixels = largest_window_pixels(self.figure, size[0] * size[1], budget, 1)
            core = int((math.sqrt(max(pixels, 0)) - 2 * self.margin) // ALIGN * ALIGN)
            if core >= MIN_CORE:
                return text + f"--tile_size {core} fits"
        return text + f"raise --max_memory_gb to at least {math.ceil(need / 2 ** 29) / 2:g}"


# ---- running -------------------------------------------------------------------------------------
class TiledMatting:
    """An engine with the zoo call shape, run whole or in tiles (module docstring).

    Args:
        engine: ``run(img, trimap) -> alpha`` (see :mod:`ppmatting.deploy.engines`).
        spec: its :class:`~ppmatting.deploy.engines.EngineSpec`.
        options: :class:`TilingOptions`.
        log: receives one line per tiled photo (its plan); None: silent.
        timer: ``timer(stage, seconds)`` for ``pre`` (normalise, pad), ``infer`` (engine calls)
            and ``post`` (stitch, crop, force known).
        warmup: run each new input shape once, untimed, before the timed run (benchmarks:
            oneDNN builds its kernels on a shape's first run).
        stream: where the progress bar goes (default stderr).

    After each photo ``last_plan`` holds its :class:`Plan`.
    """

    is_network = True
    needs_trimap = True

    def __init__(self, engine, spec, options=None, log=None, timer=None, warmup=False,
                 stream=None):
        self.engine = engine
        self.spec = spec
        self.options = (options or TilingOptions()).validate()
        self.planner = Planner(spec, self.options)
        self.log = log
        self.timer = timer
        self.warmup = warmup
        self.stream = stream
        self.last_plan = None
        self._warmed = set()
        self._whole = ShapeBatcher(self._run_batch, self.options.batch_size)

    # -- pieces ------------------------------------------------------------------------------------
    def _time(self, stage, start):
        if self.timer is not None:
            self.timer(stage, time.perf_counter() - start)

    def _run_batch(self, img, trimap):
        img = np.ascontiguousarray(img, dtype=np.float32)
        trimap = np.ascontiguousarray(trimap, dtype=np.float32)
        try:
            if self.warmup and img.shape not in self._warmed:
                self.engine.run(img, trimap)
                self._warmed.add(img.shape)
            start = time.perf_counter()
            alpha = self.engine.run(img, trimap)
            self._time("infer", start)
        except MemoryError:
            plan = self.last_plan
            estimate = f" (estimated peak {format_bytes(plan.estimate_bytes)})" if plan else ""
            raise InputError(
                f"{self.spec.describe()}: out of memory in a forward pass over "
                f"{'x'.join(str(v) for v in img.shape)}{estimate}; lower --max_memory_gb or "
                f"--tile_size so that smaller tiles are used") from None
        return np.asarray(alpha, dtype=np.float32)

    def _preprocess(self, image01, trimap_u8):
        from ppmatting.models.dim import preprocess

        start = time.perf_counter()
        prepared = preprocess(image01, trimap_u8, self.spec.mean, self.spec.std,
                              self.spec.pad_multiple)
        self._time("pre", start)
        return prepared

    def _postprocess(self, alpha, trimap_u8, size):
        from ppmatting.models.dim import postprocess

        start = time.perf_counter()
        alpha01 = postprocess(alpha, trimap_u8, size)
        self._time("post", start)
        return alpha01

    def plan(self, image01, trimap_u8):
        """Check the inputs and plan the photo (also stored as ``last_plan``)."""
        from ppmatting.models.base import check_matting_inputs

        check_matting_inputs(image01, trimap_u8, what=self.spec.name, convert=False)
        self.last_plan = self.planner.plan(np.asarray(trimap_u8))
        if self.log is not None and self.last_plan.mode == "tiled":
            self.log(f"tiling {self.last_plan.describe()}")
        return self.last_plan

    def _matte_tiled(self, image01, trimap_u8, plan):
        from tqdm import tqdm

        img, trimap, size = self._preprocess(image01, trimap_u8)
        # cores not run keep the trimap's value (0 or 1: they hold no unknown pixel)
        alpha = trimap[0, 0] / np.float32(255.0)
        bar = tqdm(total=len(plan.tiles), unit="tile", desc=f"tiles ({plan.skipped} skipped)",
                   file=self.stream or sys.stderr, dynamic_ncols=True, leave=False,
                   disable=not self.options.progress or len(plan.tiles) < 2)

        def place(finished):
            start = time.perf_counter()
            for tile, out in finished:
                cy0, cy1, cx0, cx1 = tile.core
                wy0, _, wx0, _ = tile.window
                alpha[cy0:cy1, cx0:cx1] = out[0, 0, cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0]
                bar.update(1)
            self._time("post", start)

        batcher = ShapeBatcher(self._run_batch, plan.batch)
        try:
            for tile in plan.tiles:
                wy0, wy1, wx0, wx1 = tile.window
                place(batcher.add(tile, img[:, :, wy0:wy1, wx0:wx1],
                                  trimap[:, :, wy0:wy1, wx0:wx1]))
            place(batcher.flush())
        finally:
            bar.close()
        return self._postprocess(alpha, trimap_u8, size)

    # -- the zoo call shape and the streaming interface ---------------------------------------------
    def predict(self, image01, trimap_u8):
        """image01 float32 H x W x 3 in [0, 1], trimap_u8 uint8 H x W -> alpha01 float32 H x W."""
        plan = self.plan(image01, trimap_u8)
        if plan.mode == "tiled":
            return self._matte_tiled(image01, trimap_u8, plan)
        img, trimap, size = self._preprocess(image01, trimap_u8)
        return self._postprocess(self._run_batch(img, trimap), trimap_u8, size)

    def submit(self, key, image01, trimap_u8):
        """Matte a photo, batching whole-image photos of the same padded size with later ones.

        Returns the photos finished by this call as ``[(key, alpha01), ...]`` (possibly earlier
        photos, possibly none); :meth:`flush` returns the rest. Tiled photos finish at once.
        """
        plan = self.plan(image01, trimap_u8)
        if plan.mode == "tiled":
            return [(key, self._matte_tiled(image01, trimap_u8, plan))]
        img, trimap, size = self._preprocess(image01, trimap_u8)
        batch = self.options.batch_size
        window = img.shape[2] * img.shape[3]
        if batch > 1 and self.planner.estimate(size[0] * size[1] * batch, window, batch,
                                               plan.budget) > plan.budget.limit_bytes:
            # a batch of these photos would not fit: this one runs alone
            return [(key, self._postprocess(self._run_batch(img, trimap), trimap_u8, size))]
        finished = self._whole.add((key, trimap_u8, size), img, trimap)
        return self._finish(finished)

    def flush(self):
        """Run the photos still waiting for a full batch."""
        return self._finish(self._whole.flush())

    def _finish(self, finished):
        return [(key, self._postprocess(alpha, trimap_u8, size))
                for (key, trimap_u8, size), alpha in finished]
