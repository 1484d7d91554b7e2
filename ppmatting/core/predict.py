"""The prediction loop behind ``tools/predict.py`` and ``tools/bg_replace.py``.

Steps, one function each:

* :func:`load_matter` (over ``ppmatting.core.loader.load_model``) picks what runs it: for a
  network (DIM), the exported Paddle Inference predictor (exported and checked once per weights,
  then taken from the export cache) or, with ``--dygraph``, the dynamic graph, either one wrapped
  in :class:`~ppmatting.deploy.tiling.TiledMatting` (whole image or tiles, within a memory
  budget); for a classical method, ``model.predict``.
* :func:`collect_jobs` pairs every photo with its trimap (or a rough mask to make one from), for a
  single file, a folder or a list file. Pairing is by file name: photo ``x.jpg`` goes with
  ``x.png`` or ``x_trimap.png`` in the trimap folder (``x.png`` or ``x_mask.png`` in a mask folder).
* :func:`read_job` reads one pair into ``image01`` / ``trimap_u8``, checking sizes.
* :func:`matte_and_save` mattes one photo and writes its results with a
  :class:`~ppmatting.core.writer.ResultWriter` (``<name>_alpha.png``, ``<name>_rgba.png``, ...).
* :func:`predict` runs all jobs with a progress bar. A photo that fails (unreadable, no trimap,
  size mismatch) is reported on one line and the others continue; the summary lists failures.

Every matting call goes through ``matte_fn(image01, trimap_u8) -> alpha01`` (a zoo model's
``predict`` or an exported predictor's), so the loop does not care which one runs.
"""
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from ppmatting.core.loader import load_model
from ppmatting.utils.errors import InputError, PPMattingError
from ppmatting.utils.io import (IMAGE_EXTENSIONS, check_same_size, list_images, read_alpha,
                                read_image, read_trimap)

LIST_EXTENSIONS = (".txt", ".lst", ".list")
TRIMAP_SUFFIXES = ("", "_trimap")
MASK_SUFFIXES = ("", "_mask")
DEFAULT_UNKNOWN_WIDTH = 10


def how_to_make_trimap(image_path="IMAGE"):
    """The one-line advice printed whenever a trimap is missing."""
    return ("give --trimap_path TRIMAP (white = subject, black = background, gray 128 = unknown), "
            "or make one from a rough subject mask with --trimap_from_mask MASK --unknown_width PX "
            f"(or: python tools/make_trimap.py --mask MASK --unknown_width PX --save_path "
            f"{os.path.splitext(os.path.basename(image_path))[0]}_trimap.png)")


# ---- the model -----------------------------------------------------------------------------------
@dataclass
class Matter:
    """What runs the matting: ``matte(image01, trimap_u8) -> alpha01`` plus facts for messages.
    ``tiler``: the :class:`~ppmatting.deploy.tiling.TiledMatting` behind ``matte`` for networks
    (its ``last_plan`` tells how the last photo ran), else None."""
    matte: Callable
    needs_trimap: bool
    description: str
    model: object = None
    tiler: object = None


def _is_deploy_folder(path):
    return bool(path) and os.path.isdir(path) and os.path.isfile(os.path.join(path, "deploy.yaml"))


def _is_network_config(cfg):
    """Whether the config's model is a network, from its registered class (not built)."""
    from ppmatting.cvlibs import manager

    model = cfg.dic.get("model") or {}
    name = model.get("type") if isinstance(model, dict) else None
    if not name or name not in manager.MODELS:
        return False  # load_model reports what is wrong
    return bool(getattr(manager.MODELS[name], "is_network", False))


def cached_export(config_path, model_path=None, opts=None, log=print, cfg=None):
    """The folder of the checked Paddle Inference export of this config + weights, made once
    (:func:`ppmatting.deploy.export.export_checked`) and then found in the export cache
    (:mod:`ppmatting.deploy.export_cache`) without building the network. ``cfg``: the config
    already parsed from ``config_path`` and ``opts``, if at hand."""
    from ppmatting.cvlibs.config import Config
    from ppmatting.deploy import export_cache
    from ppmatting.deploy.export import CACHE_CHECK_SHAPES, export_checked

    cfg = cfg or Config(config_path, opts=opts)
    key, parts = export_cache.export_key(cfg.dic.get("model"), model_path)
    folder = export_cache.lookup(key)
    if folder is not None:
        return folder
    model = load_model(config_path, model_path, opts)
    log(f"exporting {type(model).__name__} to Paddle Inference and checking it against the "
        f"dynamic graph (once for these weights; kept in {export_cache.exports_dir()})")
    return export_cache.store(key, lambda partial: export_checked(
        model, partial, check_shapes=CACHE_CHECK_SHAPES, config_path=config_path,
        weights=model_path), parts)


def load_matter(config_path, model_path=None, opts=None, fast=True, log=print, tiling_flags=None,
                log_plans=True, **tiling_fixed):
    """What runs the matting.

    * ``model_path`` is an export folder (``tools/export.py``'s ``deploy.yaml`` inside): its
      Paddle Inference predictor runs; ``config_path`` is not needed.
    * A network (DIM): with ``fast`` (the default) the checked export from the cache
      (:func:`cached_export`; the first call exports and checks, later calls only load), else the
      dynamic graph. A failed check is an error that says what differed, never a quiet switch to
      the slow engine.
    * A classical method: ``model.predict`` (its own ``max_memory_gb`` guards its memory).

    Networks run through :class:`~ppmatting.deploy.tiling.TiledMatting` with options from the
    config's ``test_config`` keys, ``tiling_flags`` (the tool's ``--tiling --tile_size
    --tile_margin --max_memory_gb``) and ``tiling_fixed`` (e.g. ``prefer_whole=True``);
    ``log_plans`` sends each tiled photo's plan to ``log``.
    """
    plan_log = log if log_plans else None
    from ppmatting.deploy.engines import DygraphEngine, spec_for_model, spec_for_predictor
    from ppmatting.deploy.tiling import TiledMatting, tiling_options

    if _is_deploy_folder(model_path):
        from ppmatting.deploy.info import load_deploy_info
        from ppmatting.deploy.predictor import MattingPredictor

        predictor = MattingPredictor(load_deploy_info(model_path))
        tiler = TiledMatting(predictor, spec_for_predictor(predictor),
                             tiling_options(tiling_flags, **tiling_fixed), log=plan_log)
        return Matter(matte=tiler.predict, needs_trimap=True,
                      description=f"{predictor.description} ({model_path})", model=predictor,
                      tiler=tiler)
    from ppmatting.cvlibs.config import Config

    if not config_path:
        load_model(config_path)  # the loader's one-line error
    cfg = Config(config_path, opts=opts)
    source = f", weights {model_path}" if model_path else ""
    if not _is_network_config(cfg):
        given = [f"--{name}" for name in ("tile_size", "tile_margin", "max_memory_gb")
                 if getattr(tiling_flags, name, None) is not None]
        if getattr(tiling_flags, "tiling", None) == "on":
            given.insert(0, "--tiling on")
        if given:
            raise InputError(f"{config_path}: {', '.join(given)} apply to networks; a classical "
                             f"method limits its memory with --opts model.max_memory_gb=GB (one "
                             f"solve's budget) or model.solve_scale=S")
        model = load_model(config_path, model_path, opts)
        return Matter(matte=model.predict, needs_trimap=bool(getattr(model, "needs_trimap", True)),
                      description=f"{type(model).__name__} ({config_path}{source})", model=model)
    options = tiling_options(tiling_flags, cfg.dic, **tiling_fixed)
    if fast:
        from ppmatting.deploy.info import load_deploy_info
        from ppmatting.deploy.predictor import MattingPredictor

        folder = cached_export(config_path, model_path, opts, log, cfg=cfg)
        engine = MattingPredictor(load_deploy_info(folder))
        spec = spec_for_predictor(engine)
        how = f"Paddle Inference ({', '.join(engine.notes)}; export {folder})"
    else:
        engine = DygraphEngine(load_model(config_path, model_path, opts))
        spec = spec_for_model(engine.model)
        how = "dynamic graph"
    tiler = TiledMatting(engine, spec, options, log=plan_log)
    return Matter(matte=tiler.predict, needs_trimap=True,
                  description=f"{spec.name} ({config_path}{source}) via {how}", model=engine,
                  tiler=tiler)


# ---- pairing photos with trimaps -----------------------------------------------------------------
@dataclass
class Job:
    """One photo to matte.

    ``name`` is the output stem. ``trimap_path`` / ``mask_path``: where its trimap (or the mask
    to make one from) is. ``problem``: a pairing problem found while collecting (e.g. no trimap in
    the folder), reported when this photo's turn comes so that the others still run.
    """
    image_path: str
    name: str
    trimap_path: Optional[str] = None
    mask_path: Optional[str] = None
    problem: Optional[str] = None


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _is_list_file(path):
    return os.path.isfile(path) and path.lower().endswith(LIST_EXTENSIONS)


def _index_folder(folder):
    """stem -> path for the image files in ``folder``; ``.png`` wins over other formats with the
    same stem (trimaps and masks should be lossless)."""
    index = {}
    for path in list_images(folder):
        stem = _stem(path)
        if stem not in index or path.lower().endswith(".png"):
            index[stem] = path
    return index


def _resolve_list_path(entry, list_dir):
    if os.path.isabs(entry):
        return entry
    beside_list = os.path.join(list_dir, entry)
    if os.path.exists(beside_list) or not os.path.exists(entry):
        return os.path.normpath(beside_list)
    return os.path.normpath(entry)


def _read_image_list(list_path):
    """List file lines: ``image``, ``image trimap``, or ``image alpha trimap`` (the dataset's
    validation format). Paths are relative to the list file's folder. Returns (image, trimap|None)
    pairs."""
    from ppmatting.datasets.matting_dataset import read_list_file

    rows = read_list_file(list_path, min_columns=1, max_columns=3)
    list_dir = os.path.dirname(os.path.abspath(list_path))
    pairs = []
    for columns in rows:
        image = _resolve_list_path(columns[0], list_dir)
        trimap = _resolve_list_path(columns[-1], list_dir) if len(columns) >= 2 else None
        pairs.append((image, trimap))
    return pairs


def collect_jobs(image_path, trimap_path=None, mask_path=None):
    """Pair photos with trimaps or masks.

    Args:
        image_path: an image file, a folder of images, or a list file (``.txt``; see
            :func:`_read_image_list`).
        trimap_path: an image file (only with a single photo) or a folder of trimaps named like
            the photos (``x.png`` or ``x_trimap.png`` for photo ``x.jpg``). A trimap column in a
            list file takes precedence.
        mask_path: instead of trimaps, a rough subject mask file or a folder of masks (``x.png`` or
            ``x_mask.png``) to turn into trimaps.

    Returns a list of :class:`Job`. Raises :class:`InputError` for problems that affect every
    photo (missing paths, a single trimap for many photos, two photos with the same output name).
    """
    if not image_path:
        raise InputError("--image_path is required (an image, a folder of images, or a .txt list)")
    if trimap_path and mask_path:
        raise InputError("give either --trimap_path or --trimap_from_mask, not both")
    image_path = os.fspath(image_path)
    if os.path.isdir(image_path):
        pairs = [(path, None) for path in list_images(image_path)]
        if not pairs:
            raise InputError(f"{image_path}: folder holds no images "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
    elif _is_list_file(image_path):
        pairs = _read_image_list(image_path)
    elif os.path.isfile(image_path):
        if not image_path.lower().endswith(IMAGE_EXTENSIONS):
            raise InputError(f"{image_path}: neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor "
                             f"a list file ({', '.join(LIST_EXTENSIONS)})")
        pairs = [(image_path, None)]
    else:
        raise InputError(f"{image_path}: file or folder not found")

    guide_path = trimap_path or mask_path
    guide_flag = "--trimap_path" if trimap_path else "--trimap_from_mask"
    guide_index = None
    if guide_path:
        guide_path = os.fspath(guide_path)
        if os.path.isdir(guide_path):
            guide_index = _index_folder(guide_path)
        elif not os.path.isfile(guide_path):
            raise InputError(f"{guide_path}: {guide_flag} file or folder not found")
        elif len(pairs) > 1:
            raise InputError(f"{guide_path}: {guide_flag} is one file but --image_path holds "
                             f"{len(pairs)} images; give a folder with one per image, named like "
                             f"the images")
    suffixes = TRIMAP_SUFFIXES if trimap_path else MASK_SUFFIXES

    jobs, seen = [], {}
    for image, listed_trimap in pairs:
        name = _stem(image)
        if name in seen:
            raise InputError(f"{image} and {seen[name]} would both be saved as '{name}'; rename "
                             f"one or run them separately")
        seen[name] = image
        job = Job(image_path=image, name=name, trimap_path=listed_trimap)
        if listed_trimap is None and guide_path:
            if guide_index is None:
                found = guide_path
            else:
                found = next((guide_index[name + s] for s in suffixes if name + s in guide_index),
                             None)
                if found is None:
                    tried = " or ".join(f"{name}{s}.png" for s in suffixes)
                    what = "trimap" if trimap_path else "mask"
                    job.problem = f"{image}: no {what} in {guide_path} (looked for {tried})"
            if trimap_path:
                job.trimap_path = found
            else:
                job.mask_path = found
        jobs.append(job)
    return jobs


def check_trimaps_given(jobs, needs_trimap):
    """Fail early, before any matting, when the model needs trimaps and none were given at all."""
    if needs_trimap and not any(j.trimap_path or j.mask_path or j.problem for j in jobs):
        first = jobs[0].image_path if jobs else "IMAGE"
        raise InputError(f"{first}: no trimap given, and the model needs one: "
                         f"{how_to_make_trimap(first)}")


def read_job(job, needs_trimap=True, unknown_width=DEFAULT_UNKNOWN_WIDTH):
    """Read one job's photo and trimap.

    Returns ``(image01, trimap_u8)``: float32 H x W x 3 in [0, 1] and uint8 H x W in {0, 128, 255}
    (``None`` when the model needs no trimap and none was given). Raises :class:`InputError`
    naming the file on any problem.
    """
    from ppmatting.transforms.trimap import trimap_from_mask

    if job.problem:
        raise InputError(job.problem)
    image01 = read_image(job.image_path)
    trimap_u8 = None
    if job.trimap_path:
        trimap_u8 = read_trimap(job.trimap_path)
        check_same_size(image01.shape, job.image_path, trimap_u8.shape, job.trimap_path)
    elif job.mask_path:
        mask01 = read_alpha(job.mask_path)
        check_same_size(image01.shape, job.image_path, mask01.shape, job.mask_path)
        trimap_u8 = trimap_from_mask(mask01, unknown_width)
    if needs_trimap:
        if trimap_u8 is None:
            raise InputError(f"{job.image_path}: no trimap; the model needs one: "
                             f"{how_to_make_trimap(job.image_path)}")
        if not (trimap_u8 == 128).any():
            if job.mask_path:
                raise InputError(f"{job.mask_path}: the mask gives no unknown band (is it empty "
                                 f"or all white?)")
            raise InputError(f"{job.trimap_path}: the trimap has no unknown (gray 128) region, so "
                             f"there is nothing to matte")
    return image01, trimap_u8


# ---- one photo -----------------------------------------------------------------------------------
@dataclass
class Result:
    """What :func:`matte_and_save` made for one photo (arrays kept for the caller's use)."""
    job: Job
    alpha01: np.ndarray
    fg01: Optional[np.ndarray]
    paths: dict
    seconds: float


def matte_and_save(matte_fn, job, writer, image01, trimap_u8):
    """Matte one photo and write its results with ``writer``
    (:class:`~ppmatting.core.writer.ResultWriter`)."""
    start = time.perf_counter()
    alpha01 = matte_one(matte_fn, image01, trimap_u8, job.image_path)
    saved = writer.save(job.name, image01, alpha01, trimap_u8)
    return Result(job, alpha01, saved.fg01, saved.paths, time.perf_counter() - start)


def matte_one(matte_fn, image01, trimap_u8, image_path="image"):
    """``matte_fn`` on one photo, checked: float32 H x W alpha in [0, 1]. Every ``matte_fn``
    returns a finished alpha (cropped, clamped and forced once, by ``models.base.force_known``),
    so nothing is clipped here. A user error from the model (e.g. the photo does not fit the
    memory budget) is prefixed with the photo's path."""
    try:
        alpha01 = np.asarray(matte_fn(image01, trimap_u8), dtype=np.float32)
    except PPMattingError as err:
        if str(image_path) in str(err):
            raise
        raise type(err)(f"{image_path}: {err}") from None
    if alpha01.shape != image01.shape[:2]:
        raise RuntimeError(f"{image_path}: the model returned an alpha of shape "
                           f"{alpha01.shape} for an image of {image01.shape[:2]}")
    return alpha01


# ---- the loop ------------------------------------------------------------------------------------
@dataclass
class Summary:
    done: List[Result] = field(default_factory=list)
    failed: List[tuple] = field(default_factory=list)  # (Job, one-line message)

    @property
    def ok(self):
        return not self.failed


def predict(matte_fn, jobs, writer, needs_trimap=True, unknown_width=DEFAULT_UNKNOWN_WIDTH,
            progress=True, stream=None, keep_going=True):
    """Matte every job; one photo's failure is reported and the rest continue.

    Args:
        matte_fn: ``(image01, trimap_u8) -> alpha01``.
        jobs: from :func:`collect_jobs`.
        writer: a :class:`~ppmatting.core.writer.ResultWriter` (output folder, bits, cut-out).
        stream: where progress and errors go (default stderr).
        keep_going: report a failed photo and continue (default); ``False`` lets the error
            propagate (one photo: the caller's one-line error is clearer than a summary).
    Returns a :class:`Summary`.
    """
    from tqdm import tqdm

    stream = stream or sys.stderr
    summary = Summary()
    bar = tqdm(jobs, unit="img", file=stream, disable=not progress or len(jobs) < 2,
               dynamic_ncols=True, desc="matting")
    for job in bar:
        try:
            image01, trimap_u8 = read_job(job, needs_trimap, unknown_width)
            result = matte_and_save(matte_fn, job, writer, image01, trimap_u8)
            summary.done.append(result)
        except PPMattingError as err:
            if not keep_going:
                raise
            summary.failed.append((job, str(err)))
            tqdm.write(f"error: {err}", file=stream)
        except Exception as err:  # a bug or a library failure on this photo: keep the traceback
            if not keep_going:
                raise
            message = f"{job.image_path}: {type(err).__name__}: {err}"
            summary.failed.append((job, message))
            tqdm.write(traceback.format_exc().rstrip(), file=stream)
            tqdm.write(f"error: {message}", file=stream)
    return summary


# ---- command-line pieces shared by tools/predict.py and tools/bg_replace.py -------------------------
def add_model_arguments(parser):
    """``--config --model_path --opts`` (PaddleSeg's names) and ``--dygraph``."""
    from ppmatting.utils.cli import add_config_arguments

    add_config_arguments(parser, model_path_help=(
        "trained weights for a network (.pdparams, or a published DIM checkpoint), or a "
        "tools/export.py folder; classical methods take none"))
    parser.add_argument("--dygraph", action="store_true",
                        help="run a network in Paddle's dynamic graph instead of its checked "
                             "Paddle Inference export (several times slower, more memory)")
    from ppmatting.utils.cli import add_tiling_arguments

    add_tiling_arguments(parser)
    return parser


def add_trimap_arguments(parser, image_help):
    parser.add_argument("--image_path", required=True, help=image_help)
    parser.add_argument("--trimap_path", default=None,
                        help="trimap file, or folder of trimaps named like the images "
                             "(x.png or x_trimap.png for x.jpg)")
    parser.add_argument("--trimap_from_mask", default=None, metavar="MASK",
                        help="make the trimap from a rough binary subject mask (file, or folder "
                             "named like the images) by erosion and dilation")
    parser.add_argument("--unknown_width", type=int, default=DEFAULT_UNKNOWN_WIDTH, metavar="PX",
                        help="with --trimap_from_mask: half-width in pixels of the unknown band "
                             f"around the mask's edge (default {DEFAULT_UNKNOWN_WIDTH})")
    return parser


def check_unknown_width(unknown_width):
    if unknown_width < 1:
        raise InputError(f"--unknown_width must be at least 1 pixel, got {unknown_width}")
