"""DIM on large photos: whole-image vs trimap-guided tiles, time, peak memory, exactness.

    python benchmarks/bench_large_photo.py                    # the table in docs/deploy.md
    python benchmarks/bench_large_photo.py --sizes 2048x1536 --precisions bf16
    python benchmarks/bench_large_photo.py --margins          # tiled vs whole per margin
    python benchmarks/bench_large_photo.py --calibrate        # memory figures (deploy/memory.py)
    python benchmarks/bench_large_photo.py --parity           # exported vs dynamic graph
    python benchmarks/bench_large_photo.py --tools            # predict.py vs infer.py, 3 MP
    python benchmarks/bench_large_photo.py --shapes           # memory kept per input shape
    python benchmarks/bench_large_photo.py --split            # the "deep part once" scheme

Photos are made from the bundled demo data: ``data/matting_demo/demo/new_background.jpg`` scaled to
the photo size (plus fine noise for texture), with the demo subject (``demo.png`` and its alpha)
composited over 60% of the height. Two trimaps per photo (a third on request):

* **wide**: about 10% unknown pixels spread over the whole image: a band along the subject's
  silhouette plus a grid of unknown discs every 256 pixels, so every tile holds unknown pixels;
* **thin**: about 3%: a band along the silhouette only.
* **detail** (``--trimaps detail``): the thin band over the top fifth of the subject only (hair
  retouched, the rest of the mask already right), so few tiles hold unknown pixels: the case of
  the skipped-tiles goal.

Weights: DIM with seeded random weights rescaled layer by layer so that every convolution's output
has unit spread on a probe image (LSUV, Mishkin & Matas, ICLR 2016). The default initialisation
(Xavier, as mmediting's) gives alpha = 0.5 +- 1e-5 through 13 ReLU layers, which would hide any
tiling error; the rescaled network's alpha spans [0, 1] and depends on distant pixels as a trained
one does. No published weights are available offline.

Each measurement runs in its own child process; ``peak GiB`` is that process's peak resident
memory (``resource.getrusage().ru_maxrss``) while it reads the photo and trimap, plans, and
mattes through ``ppmatting.deploy.tiling.TiledMatting`` over the exported Paddle Inference
predictor; ``seconds`` covers planning and matting (not reading or building the predictor). The
first run of a shape includes oneDNN's kernel creation, as for a user. Whole-image rows are
skipped where the memory estimate exceeds --whole_limit_gb (default 10). Tiled rows run under
--max_memory_gb (default 6); ``est GiB`` is the planner's estimate of the peak.
``|dA|`` compares the tiled alpha with the whole-image alpha (same photo, trimap and precision)
over the unknown pixels: mean, 99.9th percentile and max, in 1/255 units.

Goals (issue 18): 24 MP peak RSS <= 6 GiB in fp32 and bf16; <= 6 min fp32, <= 2 min bf16 (wide
trimap); tiled == whole within 2/255; a trimap whose unknown pixels touch at most a quarter of
the tiles >= 2x faster than whole-image; predict.py <= 1.2x infer.py in time and memory (3 MP).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

_THREADS = str(os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

CONFIGS = {"mmediting": "configs/dim/dim-vgg16.yml",
           "paddleseg": "configs/dim/dim-vgg16-paddleseg.yml"}
DEMO = os.path.join(ROOT, "data", "matting_demo", "demo")
GIB = 1024 ** 3
GOAL_PEAK_GIB = 6.0
GOAL_SECONDS = {"fp32": 360.0, "bf16": 120.0}
GOAL_TILED_DIFF = 2.0 / 255.0
GOAL_SPARSE_SPEEDUP = 2.0
GOAL_TOOL_RATIO = 1.2


MODES = {
    "margins": "tiled-vs-whole difference per margin and stitching (one photo)",
    "calibrate": "measure the memory figures of ppmatting/deploy/memory.py",
    "parity": "exported vs dynamic graph: share within 1/255 and max per size",
    "shapes": "memory kept per input shape, oneDNN cache capacity 16 vs 1",
    "split": "count the 'deep part once' scheme against plain tiles",
    "tools": "tools/predict.py vs deploy/python/infer.py on the 3 MP photo",
}


def hw(text):
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=hw,
                        default=[(1536, 2048), (2160, 3840), (4000, 6000)], metavar="HxW")
    parser.add_argument("--trimaps", nargs="+", choices=("wide", "thin", "detail"),
                        default=["wide", "thin"])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                        default=["fp32", "bf16"])
    parser.add_argument("--variant", choices=sorted(CONFIGS), default="mmediting")
    parser.add_argument("--max_memory_gb", type=float, default=GOAL_PEAK_GIB,
                        help="budget of the tiled runs (default 6)")
    parser.add_argument("--whole_limit_gb", type=float, default=10.0,
                        help="skip whole-image runs estimated above this (default 10)")
    parser.add_argument("--tile_margin", type=int, default=None,
                        help="margin of the tiled runs (default: the planner's)")
    parser.add_argument("--seam_tile", type=int, default=512,
                        help="where the whole image runs, also tile with cores of this size "
                             "(many seams) and compare; 0: no such rows")
    parser.add_argument("--work_dir", default=None,
                        help="keep photos, export and alphas here (default: a temp folder)")
    for name, text in MODES.items():
        parser.add_argument(f"--{name}", action="store_true", help=text)
    parser.add_argument("--margin_list", nargs="+", type=int, default=[64, 128, 160, 192, 224, 256],
                        help="with --margins")
    parser.add_argument("--cores", nargs="+", type=int, default=[512, 1024],
                        help="with --margins")
    parser.add_argument("--host_only", action="store_true",
                        help="with --calibrate: only the tool's own arrays")
    parser.add_argument("--engines", nargs="+", default=["paddle", "dygraph", "onnxruntime"],
                        help="with --calibrate: the engines to measure")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- weights -------------------------------------------------------------------------------------
def trained_like_model(variant, seed=0, probe=64):
    """DIM with seeded random weights, each convolution rescaled (in forward order) so that its
    output has standard deviation 1 on a probe image (2 for the alpha logit): LSUV."""
    import paddle
    from bench_infer import calibrate_batch_norm
    from ppmatting.cvlibs.config import Config
    from ppmatting.deploy.export import check_inputs

    paddle.seed(seed)
    model = Config(os.path.join(ROOT, CONFIGS[variant])).model
    calibrate_batch_norm(model, seed)
    model.eval()
    img, trimap = check_inputs(model, 1, probe, probe, seed=seed)
    img, trimap = paddle.to_tensor(img), paddle.to_tensor(trimap)
    convs = [(name, layer) for name, layer in model.named_sublayers()
             if isinstance(layer, paddle.nn.Conv2D)]
    # layers followed by batch norm are rescaled by it; the logit layers get a wider spread
    with paddle.no_grad():
        for name, layer in convs:
            if variant == "paddleseg":
                break
            seen = []

            def record(_layer, _inputs, output):
                seen.append(float(output.std()))  # returns None: the output is kept

            hook = layer.register_forward_post_hook(record)
            model(img, trimap)
            hook.remove()
            target = 2.0 if name.endswith("deconv1") else 1.0
            if seen and seen[0] > 0:
                layer.weight.set_value(layer.weight.numpy() * np.float32(target / seen[0]))
    return model


def export_trained_like(variant, folder):
    """Export the trained-like weights to ``folder``; also save them as ``weights.pdparams``."""
    import paddle
    from ppmatting.deploy.export import export_static
    from ppmatting.deploy.info import build_deploy_dict, write_deploy_yaml

    model = trained_like_model(variant)
    os.makedirs(folder, exist_ok=True)
    paddle.save(model.state_dict(), os.path.join(folder, "weights.pdparams"))
    files = export_static(model, folder)
    write_deploy_yaml(folder, build_deploy_dict(model, files, output_name=None,
                                                config_path=CONFIGS[variant]))
    return model


# ---- photos --------------------------------------------------------------------------------------
def make_scene(height, width, seed=0):
    """(image01 H x W x 3 float32, subject alpha01 H x W float32) from the bundled demo data."""
    import cv2
    from ppmatting.utils.io import read_alpha, read_image

    rng = np.random.default_rng(seed)
    image = cv2.resize(read_image(os.path.join(DEMO, "new_background.jpg")), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0.0, 0.02, image.shape).astype(np.float32)
    subject = read_image(os.path.join(DEMO, "demo.png"))
    subject_alpha = read_alpha(os.path.join(DEMO, "demo_alpha.png"))
    sh = int(0.6 * height)
    sw = min(int(sh * subject.shape[1] / subject.shape[0]), width - int(0.45 * width))
    y0, x0 = int(0.3 * height), int(0.45 * width)
    alpha = np.zeros((height, width), np.float32)
    alpha[y0:y0 + sh, x0:x0 + sw] = np.clip(cv2.resize(subject_alpha, (sw, sh),
                                                       interpolation=cv2.INTER_CUBIC), 0, 1)
    patch = cv2.resize(subject, (sw, sh), interpolation=cv2.INTER_CUBIC)
    a = alpha[y0:y0 + sh, x0:x0 + sw, None]
    image[y0:y0 + sh, x0:x0 + sw] = a * patch + (1 - a) * image[y0:y0 + sh, x0:x0 + sw]
    return np.clip(image, 0, 1), alpha


def make_trimaps(alpha01):
    """{"wide", "thin", "detail"} -> trimap_u8 for a subject alpha (module docstring)."""
    import cv2

    inside = (alpha01 > 0.5).astype(np.uint8)
    distance = np.where(inside > 0, cv2.distanceTransform(inside, cv2.DIST_L2, 5),
                        cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5))
    height, width = alpha01.shape
    trimaps = {}
    for name, share in (("thin", 0.03), ("wide", 0.04)):
        radius = float(np.quantile(distance, share))
        band = distance < radius
        trimap = np.where(inside > 0, 255, 0).astype(np.uint8)
        trimap[band] = 128
        trimaps[name] = trimap
    # detail: the thin band over the top fifth of the subject's height only
    rows = np.flatnonzero(inside.any(axis=1))
    top = rows[0] + (rows[-1] - rows[0]) // 5 if rows.size else 0
    detail = trimaps["thin"].copy()
    below = np.arange(height)[:, None] > top
    detail[below & (detail == 128)] = np.where(inside > 0, 255, 0)[below & (detail == 128)]
    trimaps["detail"] = detail
    # wide: add unknown discs on a 256-pixel grid over the whole image, ~6% of the pixels
    yy, xx = np.ogrid[:height, :width]
    spacing, radius = 256, 0.14 * 256
    discs = (np.hypot((yy % spacing) - spacing / 2, (xx % spacing) - spacing / 2) < radius)
    trimaps["wide"][discs] = 128
    return trimaps


def write_photos(work, sizes, trimap_names):
    """Write photo and trimap PNGs for every size; returns {(size, trimap): (photo, trimap)}."""
    from ppmatting.utils.io import write_image

    paths = {}
    for height, width in sizes:
        tag = f"{width}x{height}"
        photo = os.path.join(work, f"photo_{tag}.png")
        trimap_paths = {name: os.path.join(work, f"trimap_{tag}_{name}.png") for name in trimap_names}
        if not (os.path.isfile(photo) and all(os.path.isfile(p) for p in trimap_paths.values())):
            image, alpha = make_scene(height, width)
            write_image(photo, image)
            for name, trimap in make_trimaps(alpha).items():
                if name in trimap_paths:
                    write_image(trimap_paths[name], trimap)
        for name, path in trimap_paths.items():
            paths[((height, width), name)] = (photo, path)
    return paths


# ---- one measurement in a child process ----------------------------------------------------------
def child(spec):
    """Matte one photo as ``spec`` says; print a RESULT line with the numbers."""
    from ppmatting.deploy.engines import spec_for_predictor
    from ppmatting.deploy.info import load_deploy_info
    from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions
    from ppmatting.deploy.tiling import TiledMatting, TilingOptions
    from ppmatting.utils.io import read_image, read_trimap

    predictor = MattingPredictor(load_deploy_info(spec["export"]),
                                 PredictorOptions(precision=spec["precision"]))
    image01 = read_image(spec["photo"])
    trimap_u8 = read_trimap(spec["trimap"])
    options = TilingOptions(tiling=spec["tiling"], tile_size=spec.get("tile_size"),
                            max_memory_gb=spec.get("max_memory_gb"), progress=False)
    if spec.get("tile_margin") is not None:
        options.tile_margin = spec["tile_margin"]
    tiled = TiledMatting(predictor, spec_for_predictor(predictor), options)
    start = time.perf_counter()
    alpha01 = tiled.predict(image01, trimap_u8)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if spec.get("out"):
        np.save(spec["out"], alpha01)
    plan = tiled.last_plan.as_dict()
    plan["core"] = tiled.last_plan.core
    height, width = trimap_u8.shape
    plan["pixels_run"] = sum(t.window_pixels for t in tiled.last_plan.tiles) / (height * width)
    print("RESULT " + json.dumps({"seconds": seconds, "peak": peak, "plan": plan}), flush=True)


def run_child(spec):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail}


def unknown_diff(path_a, path_b, trimap_path):
    """(mean, 99.9th percentile, max) of |a - b| over the unknown pixels, in 1/255 units."""
    from ppmatting.utils.io import read_trimap

    unknown = read_trimap(trimap_path) == 128
    diff = np.abs(np.load(path_a)[unknown] - np.load(path_b)[unknown]) * 255.0
    return float(diff.mean()), float(np.quantile(diff, 0.999)), float(diff.max())


# ---- the main table ------------------------------------------------------------------------------
def whole_estimate_gib(size, variant, precision):
    from ppmatting.deploy.memory import engine_figure, estimate_peak

    padded = [-(-v // 32) * 32 for v in size]
    figure = engine_figure(variant, "paddle", precision)
    # the child's own program, libraries and predictor: about 0.5 GiB (measured RSS before runs)
    return estimate_peak(figure, size[0] * size[1], padded[0] * padded[1], 1, 0.5 * GIB) / GIB


def main_table(args, work, export):
    from ppmatting.utils.io import read_trimap

    paths = write_photos(work, args.sizes, args.trimaps)
    print(f"{'photo':>10s} {'trimap':6s} {'unknown':>7s} {'prec':4s} {'mode':9s} "
          f"{'tiles run/all':>13s} {'core':>5s} {'px run':>6s} {'seconds':>8s} {'peak GiB':>8s} "
          f"{'est GiB':>7s} {'|dA| mean/p99.9/max (1/255)':>28s}", flush=True)
    rows = []
    for size in args.sizes:
        for trimap_name in args.trimaps:
            photo, trimap = paths[(size, trimap_name)]
            unknown_share = float((read_trimap(trimap) == 128).mean())
            for precision in args.precisions:
                tag = f"{size[1]}x{size[0]}_{trimap_name}_{precision}"
                base = dict(export=export, photo=photo, trimap=trimap, precision=precision)
                runs = {}
                if whole_estimate_gib(size, args.variant, precision) <= args.whole_limit_gb:
                    runs["whole"] = dict(base, tiling="off", max_memory_gb=None)
                else:
                    runs["whole"] = None
                runs["tiled"] = dict(base, tiling="on", max_memory_gb=args.max_memory_gb,
                                     tile_margin=args.tile_margin)
                if runs["whole"] is not None and args.seam_tile:
                    # small tiles, many seams: the exactness check where the whole image runs
                    runs[f"tiled {args.seam_tile}"] = dict(base, tiling="on", max_memory_gb=None,
                                                           tile_size=args.seam_tile,
                                                           tile_margin=args.tile_margin)
                results = {}
                for mode, spec in runs.items():
                    if spec is None:
                        results[mode] = {"skipped": f"estimate above {args.whole_limit_gb:g} GiB"}
                        continue
                    out = os.path.join(work, f"{mode.replace(' ', '')}_{tag}.npy")
                    results[mode] = run_child(dict(spec, out=out))
                    if mode != "whole" and "seconds" in results[mode] and \
                            "seconds" in results["whole"]:
                        results[mode]["diff"] = unknown_diff(
                            os.path.join(work, f"whole_{tag}.npy"), out, trimap)
                for mode, result in results.items():
                    row = dict(size=size, trimap=trimap_name, unknown=unknown_share,
                               precision=precision, mode=mode, **result)
                    rows.append(row)
                    print_row(row)
                for mode in runs:
                    path = os.path.join(work, f"{mode.replace(' ', '')}_{tag}.npy")
                    if os.path.exists(path):
                        os.unlink(path)
    print()
    for line in goals(rows):
        print(line)


def print_row(row):
    size = f"{row['size'][1]}x{row['size'][0]}"
    head = f"{size:>10s} {row['trimap']:6s} {row['unknown']:7.1%} {row['precision']:4s} {row['mode']:9s}"
    if "seconds" not in row:
        print(f"{head} {'-':>13s} {'-':>5s} {'-':>6s} {'-':>8s} {'-':>8s} {'-':>7s}  "
              f"{row.get('skipped') or 'failed: ' + row.get('error', '?')}", flush=True)
        return
    plan = row["plan"]
    tiles = f"{plan['tiles_run']}/{plan['tiles_run'] + plan['tiles_skipped']}"
    core = str(plan.get("core") or "-")
    diff = "" if row.get("diff") is None else "{:.2f} / {:.2f} / {:.2f}".format(*row["diff"])
    print(f"{head} {tiles:>13s} {core:>5s} {plan['pixels_run']:6.2f} {row['seconds']:8.1f} "
          f"{row['peak'] / GIB:8.2f} {plan['estimate_bytes'] / GIB:7.2f} {diff:>28s}", flush=True)


def goals(rows):
    lines = []
    largest = max(r["size"][0] * r["size"][1] for r in rows)
    big = [r for r in rows if r["size"][0] * r["size"][1] == largest and r["mode"] == "tiled"
           and "seconds" in r]
    for row in big:
        ok_mem = row["peak"] / GIB <= GOAL_PEAK_GIB
        line = (f"{row['size'][1]}x{row['size'][0]} {row['trimap']} {row['precision']} tiled: peak "
                f"{row['peak'] / GIB:.2f} GiB (goal <= {GOAL_PEAK_GIB:g}): "
                f"{'met' if ok_mem else 'NOT met'}")
        if row["trimap"] == "wide":
            goal = GOAL_SECONDS[row["precision"]]
            line += (f"; {row['seconds']:.0f} s (goal <= {goal:.0f}): "
                     f"{'met' if row['seconds'] <= goal else 'NOT met'}")
        lines.append(line)
    for row in rows:
        if row.get("diff") is not None:
            ok = row["diff"][2] <= GOAL_TILED_DIFF * 255 + 1e-9
            lines.append(f"{row['size'][1]}x{row['size'][0]} {row['trimap']} {row['precision']} "
                         f"{row['mode']}: vs whole max |dA| {row['diff'][2]:.2f}/255 "
                         f"(goal <= 2/255): {'met' if ok else 'NOT met'}")
    pairs = {}
    for row in rows:
        if "seconds" in row:
            pairs.setdefault((row["size"], row["trimap"], row["precision"]), {})[row["mode"]] = row
    for (size, trimap, precision), modes in pairs.items():
        if "whole" in modes and "tiled" in modes:
            plan = modes["tiled"]["plan"]
            share = plan["tiles_run"] / max(1, plan["tiles_run"] + plan["tiles_skipped"])
            speed = modes["whole"]["seconds"] / modes["tiled"]["seconds"]
            verdict = ("met" if speed >= GOAL_SPARSE_SPEEDUP else "NOT met") if share <= 0.25 else \
                "goal applies to <= 25% of tiles"
            lines.append(f"{size[1]}x{size[0]} {trimap} {precision}: tiles run {share:.0%}, "
                         f"whole/tiled time {speed:.2f}x (goal >= {GOAL_SPARSE_SPEEDUP:g}x when "
                         f"<= 25% of tiles run): {verdict}")
    return lines


# ---- margins: tiled vs whole per margin, core-only vs blended stitching -------------------------
def margins_table(args, work, export):
    """In one process: the whole-image alpha, then for each core size and margin the windows'
    alphas, stitched from the cores only and blended (linear ramps across the overlaps)."""
    from ppmatting.deploy.info import load_deploy_info
    from ppmatting.deploy.predictor import MattingPredictor
    from ppmatting.deploy.tiling import padded_size, tile_grid
    from ppmatting.models.dim import postprocess, preprocess
    from ppmatting.utils.io import read_image, read_trimap

    size = args.sizes[0]
    paths = write_photos(work, [size], ["wide"])
    photo, trimap_path = paths[(size, "wide")]
    image01, trimap_u8 = read_image(photo), read_trimap(trimap_path)
    predictor = MattingPredictor(load_deploy_info(export))
    img, trimap, hw_ = preprocess(image01, trimap_u8, predictor.info.mean, predictor.info.std, 32)
    start = time.perf_counter()
    whole = postprocess(predictor.run(img, trimap), trimap_u8, hw_)
    whole_seconds = time.perf_counter() - start
    unknown = trimap_u8 == 128
    padded = padded_size(size[0], size[1], 32)
    print(f"{size[1]}x{size[0]} wide trimap, fp32; whole image {whole_seconds:.1f} s")
    print(f"{'core':>5s} {'margin':>6s} {'stitch':6s} {'pixels run / image':>18s} {'seconds':>8s} "
          f"{'mean':>7s} {'p99.9':>7s} {'max':>7s}  (|dA| over unknown pixels, 1/255)", flush=True)
    for core in args.cores:
        for margin in args.margin_list:
            tiles = tile_grid(padded, core, margin)
            core_only = np.zeros(padded, np.float32)
            blend_sum = np.zeros(padded, np.float32)
            blend_weight = np.zeros(padded, np.float32)
            start = time.perf_counter()
            for tile in tiles:
                wy0, wy1, wx0, wx1 = tile.window
                out = predictor.run(img[:, :, wy0:wy1, wx0:wx1], trimap[:, :, wy0:wy1, wx0:wx1])[0, 0]
                cy0, cy1, cx0, cx1 = tile.core
                core_only[cy0:cy1, cx0:cx1] = out[cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0]
                weight = _blend_weight(tile, padded, margin)
                blend_sum[wy0:wy1, wx0:wx1] += weight * out
                blend_weight[wy0:wy1, wx0:wx1] += weight
            seconds = time.perf_counter() - start
            run_pixels = sum(t.window_pixels for t in tiles) / float(padded[0] * padded[1])
            for stitch, alpha in (("core", core_only), ("blend", blend_sum / blend_weight)):
                diff = np.abs(postprocess(alpha, trimap_u8, hw_) - whole)[unknown] * 255
                print(f"{core:5d} {margin:6d} {stitch:6s} {run_pixels:18.2f} {seconds:8.1f} "
                      f"{diff.mean():7.3f} {np.quantile(diff, 0.999):7.3f} {diff.max():7.3f}",
                      flush=True)


def _blend_weight(tile, padded, margin):
    """Weights over a window: 1 on the core, ramping linearly to 0 across half of the margin on
    each side that has a neighbour (the overlap is then shared between the two windows)."""
    wy0, wy1, wx0, wx1 = tile.window
    cy0, cy1, cx0, cx1 = tile.core
    ramp = max(1, margin // 2)

    def axis(w0, w1, c0, c1, length):
        coords = np.arange(w0, w1, dtype=np.float32)
        weight = np.ones_like(coords)
        if c0 > 0:
            weight = np.minimum(weight, np.clip((coords - (c0 - ramp / 2)) / ramp + 0.5, 0, 1))
        if c1 < length:
            weight = np.minimum(weight, np.clip(((c1 + ramp / 2) - coords) / ramp - 0.5, 0, 1))
        return np.maximum(weight, 1e-6)

    return axis(wy0, wy1, cy0, cy1, padded[0])[:, None] * axis(wx0, wx1, cx0, cx1, padded[1])[None]


# ---- memory figures ------------------------------------------------------------------------------
CALIBRATION = [("mmediting", "paddle", "fp32"), ("mmediting", "paddle", "bf16"),
               ("mmediting", "dygraph", "fp32"), ("paddleseg", "paddle", "fp32"),
               ("paddleseg", "paddle", "bf16"), ("paddleseg", "dygraph", "fp32"),
               ("paddleseg", "onnxruntime", "fp32"), ("mmediting", "onnxruntime", "fp32")]
CALIBRATION_SIZES = [(512, 512), (1024, 1024)]
CALIBRATION_CHECK = (768, 1280)
CALIBRATION_RUNS = (4, 2)  # runs per measurement: exported engines, dynamic graph


def _engine(spec):
    """The engine a calibration child measures."""
    from ppmatting.deploy.info import load_deploy_info

    if spec["engine"] == "paddle":
        from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions

        return MattingPredictor(load_deploy_info(spec["export"]),
                                PredictorOptions(precision=spec["precision"]))
    if spec["engine"] == "onnxruntime":
        from ppmatting.deploy.export import onnx_runner

        class Runner:
            run = staticmethod(onnx_runner(os.path.join(spec["export"], "model.onnx")))
        return Runner()
    import paddle
    from ppmatting.cvlibs.config import Config
    from ppmatting.deploy.engines import DygraphEngine

    model = Config(os.path.join(ROOT, CONFIGS[spec["variant"]])).model
    model.set_state_dict(paddle.load(os.path.join(spec["export"], "weights.pdparams")))
    model.eval()
    return DygraphEngine(model)


def calibration_child(spec):
    """One forward pass at spec's size; print the memory it added to the process."""
    from ppmatting.deploy.memory import current_rss_bytes

    engine = None if spec.get("host") else _engine(spec)
    height, width = spec["size"]
    rng = np.random.default_rng(0)
    held = 0
    if spec.get("host"):  # the tool's own arrays: pre- and post-process, no network
        from ppmatting.deploy.engines import EngineSpec
        from ppmatting.deploy.tiling import TiledMatting, TilingOptions
        from ppmatting.utils.io import read_image, read_trimap

        image01, trimap_u8 = read_image(spec["photo"]), read_trimap(spec["trimap"])
        rss_during_runs = []

        class Zeros:  # an engine that records what the process holds while it runs
            @staticmethod
            def run(img, trimap):
                rss_during_runs.append(current_rss_bytes())
                return np.zeros_like(trimap)

        before = current_rss_bytes()
        tiled = TiledMatting(Zeros(), EngineSpec("mmediting", (0.5,) * 3, (0.5,) * 3, 32, "paddle"),
                             TilingOptions(tiling="on", tile_size=512, max_memory_gb=1000,
                                           progress=False))
        tiled.predict(image01, trimap_u8)
        held = max(rss_during_runs) - before
        pixels = height * width
    else:
        # several runs of one shape, as tiles do: the allocator settles after two or three runs
        # at about 20% above the first run's peak
        img = rng.normal(0, 1, (1, 3, height + 64, width + 64)).astype(np.float32)
        trimap = np.where(rng.random((1, 1, height + 64, width + 64)) < 0.5, 128,
                          255).astype(np.float32)
        before = current_rss_bytes()
        for run in range(CALIBRATION_RUNS[spec["engine"] == "dygraph"]):
            y, x = 32 * (run % 2), 32 * (run // 2 % 2)
            engine.run(np.ascontiguousarray(img[:, :, y:y + height, x:x + width]),
                       np.ascontiguousarray(trimap[:, :, y:y + height, x:x + width]))
        pixels = height * width
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps({"added": peak - before, "held": held, "pixels": pixels}),
          flush=True)


def calibrate(args, work):
    """Fit fixed + per-pixel bytes from two window sizes per (variant, engine, precision) (the
    peak over several runs of one shape, as tiles do), check the line at a third size, and
    measure the tool's own arrays per photo pixel (``--calibrate --host_only`` for these alone)."""
    import importlib.util

    exports, models = {}, {}
    for variant in sorted({c[0] for c in CALIBRATION}):
        folder = os.path.join(work, f"export_{variant}")
        if not os.path.isfile(os.path.join(folder, "deploy.yaml")):  # else a reused --work_dir
            models[variant] = export_trained_like(variant, folder)
        exports[variant] = folder
    has_onnx = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))
    if has_onnx and "onnxruntime" in args.engines:
        from ppmatting.deploy.export import write_onnx

        for variant, folder in exports.items():  # the paper's ONNX graph: portable unpooling
            if not os.path.isfile(os.path.join(folder, "model.onnx")):
                model = models.get(variant)
                if model is None:  # a reused --work_dir: rebuild the seeded, exported weights
                    model = trained_like_model(variant)
                write_onnx(model, folder)
    print("# (variant, engine, precision): EngineFigure(fixed bytes, bytes per pixel), "
          f"from {CALIBRATION_SIZES}; check at {CALIBRATION_CHECK[1]}x{CALIBRATION_CHECK[0]}")
    for variant, engine, precision in ([] if args.host_only else CALIBRATION):
        if engine not in args.engines:
            continue
        if engine == "onnxruntime" and not has_onnx:
            print(f"# {variant} {engine}: skipped (paddle2onnx / onnxruntime not installed)")
            continue
        points = []
        for size in CALIBRATION_SIZES + [CALIBRATION_CHECK]:
            result = run_child({"calibrate": True, "variant": variant, "engine": engine,
                                "precision": precision, "export": exports[variant],
                                "size": list(size)})
            points.append(result)
        if any("error" in p for p in points):
            print(f"# {variant} {engine} {precision}: failed: "
                  f"{next(p['error'] for p in points if 'error' in p)}")
            continue
        (a, b, check) = points
        slope = (b["added"] - a["added"]) / (b["pixels"] - a["pixels"])
        fixed = max(0.0, a["added"] - slope * a["pixels"])
        predicted = fixed + slope * check["pixels"]
        print(f'    ("{variant}", "{engine}", "{precision}"): EngineFigure({fixed:.3g}, '
              f'{slope:.0f}.0),  # check: measured {check["added"] / 2 ** 20:.0f} MiB, line '
              f'{predicted / 2 ** 20:.0f} MiB', flush=True)
    paths = write_photos(work, [(1536, 2048)], ["wide"])
    photo, trimap = paths[((1536, 2048), "wide")]
    result = run_child({"calibrate": True, "host": True, "variant": "mmediting",
                        "engine": "paddle", "precision": "fp32", "export": exports["mmediting"],
                        "size": [1536, 2048], "photo": photo, "trimap": trimap})
    if "error" in result:
        print(f"# host arrays: failed: {result['error']}")
    else:
        print(f"PREPROCESS_BYTES_PER_PIXEL = {result['added'] / result['pixels']:.0f}.0\n"
              f"HELD_BYTES_PER_PIXEL = {result['held'] / result['pixels']:.0f}.0  "
              f"# 2048x1536 photo (already read), 512-pixel tiles")


# ---- memory kept per input shape ----------------------------------------------------------------
SHAPES = [(512, 512), (512, 544), (544, 512), (544, 544), (480, 512), (512, 480), (480, 480),
          (448, 512), (512, 512), (512, 544)]


def shapes_child(spec):
    """Run the predictor on SHAPES in turn; print the RSS after each."""
    from ppmatting.deploy.info import load_deploy_info
    from ppmatting.deploy.memory import current_rss_bytes
    from ppmatting.deploy.predictor import MattingPredictor, PredictorOptions

    predictor = MattingPredictor(load_deploy_info(spec["export"]), PredictorOptions(
        precision=spec["precision"], onednn_cache_capacity=spec["capacity"]))
    rng = np.random.default_rng(0)
    rss = [current_rss_bytes()]
    for height, width in SHAPES:
        predictor.run(rng.normal(0, 1, (1, 3, height, width)).astype(np.float32),
                      np.full((1, 1, height, width), 128, np.float32))
        rss.append(current_rss_bytes())
    print("RESULT " + json.dumps({"rss": rss}), flush=True)


def shapes_table(args, export):
    """RSS while one predictor runs ten input shapes near 512x512, per oneDNN cache capacity."""
    print("RSS (GiB) before and after each run; shapes " + ", ".join(f"{h}x{w}" for h, w in SHAPES))
    for precision in args.precisions:
        for capacity in (16, 1):
            result = run_child({"shapes": True, "export": export, "precision": precision,
                                "capacity": capacity})
            values = " ".join(f"{v / GIB:.2f}" for v in result.get("rss", []))
            print(f"{precision} onednn_cache_capacity {capacity:2d}: "
                  f"{values or result.get('error')}", flush=True)


# ---- the "deep part once" scheme, counted ----------------------------------------------------------
# The paper's DIM split at 1/8 resolution: A = the encoder up to the third pooling (runs per tile:
# the decoder needs its pooling indices), B = the rest of the encoder and the decoder down to
# deconv4_1 (all at 1/8 or coarser: once over the whole image), C = the decoder from the third
# unpooling up and the refiner (per tile).
SPLIT_B = ("conv4_", "conv5_", "conv6", "deconv6_1", "deconv5_1", "deconv4_1")
SPLIT_A = ("conv1_", "conv2_", "conv3_")


def flops_per_pixel(model, probe=64):
    """{layer name: convolution FLOPs per input pixel} (multiply-add = 2), from forward hooks."""
    import paddle
    from ppmatting.deploy.export import check_inputs, dygraph_alpha

    counts, handles = {}, []
    for name, layer in model.named_sublayers():
        if isinstance(layer, paddle.nn.Conv2D):
            def hook(_layer, _inputs, output, name=name):
                _, cin, kh, kw = _layer.weight.shape
                counts[name] = 2.0 * output.shape[1] * output.shape[2] * output.shape[3] * \
                    cin * kh * kw / probe ** 2
            handles.append(layer.register_forward_post_hook(hook))
    try:
        dygraph_alpha(model, *check_inputs(model, 1, probe, probe))
    finally:
        for handle in handles:
            handle.remove()
    return counts


def split_table(args, work):
    """FLOP shares of the split and the pixels each scheme runs on the 24 MP photo."""
    from ppmatting.deploy.engines import EngineSpec
    from ppmatting.deploy.memory import Budget, current_rss_bytes
    from ppmatting.deploy.tiling import Planner, TilingOptions
    from ppmatting.models.dim import dim_vgg16
    from ppmatting.utils.io import read_trimap

    counts = flops_per_pixel(dim_vgg16())
    total = sum(counts.values())

    def share(prefixes):
        return sum(v for k, v in counts.items() if k.split(".")[-1].startswith(prefixes)) / total

    a, b = share(SPLIT_A), share(SPLIT_B)
    c = 1.0 - a - b
    print(f"DIM (mmediting) {total / 1e6:.2f} MFLOP per pixel: A (encoder to pool3, per tile) "
          f"{a:.1%}, B (1/8 and coarser, once) {b:.1%}, C (decoder from unpool3 + refiner, per "
          f"tile) {c:.1%}")
    size = args.sizes[-1]
    paths = write_photos(work, [size], ["wide"])
    trimap = read_trimap(paths[(size, "wide")][1])
    spec = EngineSpec("mmediting", (0.5,) * 3, (0.5,) * 3, 32, "paddle", "fp32")
    budget = Budget(args.max_memory_gb * GIB, current_rss_bytes(), "")
    plan = Planner(spec, TilingOptions(tiling="on").validate()).plan(trimap, budget)

    def pixels(margin):
        options = TilingOptions(tiling="on", tile_size=plan.core, tile_margin=margin).validate()
        tiled = Planner(spec, options).plan(trimap, Budget(float("inf"), 0, ""))
        return sum(t.window_pixels for t in tiled.tiles) / float(size[0] * size[1])

    plain = pixels(plan.margin)
    # A needs 22 px of context (radius of its receptive field), A + C 42: margins 32 and 64
    deep_once = a * pixels(32) + b + (a + c) * pixels(64)
    print(f"{size[1]}x{size[0]} wide trimap, cores of {plan.core} px: plain tiles run "
          f"{plain:.2f}x the image's pixels (margin {plan.margin}); the split would run "
          f"{deep_once:.2f}x the work of one whole-image pass (A twice: in the first pass to "
          f"build B's input, again per tile for the pooling indices C unpools with)")


# ---- parity: exported vs dynamic graph ----------------------------------------------------------
def parity_table(args):
    """How many pixels a max-pool near-tie moves between the export and the dynamic graph."""
    from ppmatting.deploy.export import check_parity

    print(f"{'variant':10s} {'size':>9s} {'seed':>4s} {'share within 1/255':>19s} "
          f"{'pixels > 1/255':>14s} {'max |dA|':>9s} {'mean |dA|':>9s}", flush=True)
    for variant in ("mmediting", "paddleseg"):
        folder = tempfile.mkdtemp(prefix=f"parity-{variant}-")
        try:
            model = export_trained_like(variant, folder)
            from ppmatting.deploy.info import load_deploy_info
            from ppmatting.deploy.predictor import MattingPredictor

            predictor = MattingPredictor(load_deploy_info(folder))
            for size in (64, 128, 256, 320):
                for seed in range(4):
                    [(_, parity)] = check_parity(model, predictor.run, [(1, size, size)],
                                                 seed=100 * seed + size)
                    moved = round((1 - parity.share_within) * parity.pixels)
                    print(f"{variant:10s} {size:>4d}x{size:<4d} {seed:4d} "
                          f"{parity.share_within:19.4%} {moved:14d} {parity.max_diff:9.2e} "
                          f"{parity.mean_diff:9.2e}", flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# ---- tools: predict.py vs infer.py ---------------------------------------------------------------
def _timed_tool(args, env):
    """(wall seconds, peak RSS bytes, returncode) of one tool run, measured with wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable] + args, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss * 1024, proc.returncode, proc.stderr.read()


def tools_table(args, work, export):
    size = (1536, 2048)
    paths = write_photos(work, [size], ["wide"])
    photo, trimap = paths[(size, "wide")]
    env = dict(os.environ, PPMATTING_CACHE_DIR=os.path.join(work, "cache"), PYTHONPATH=ROOT)
    predict = [os.path.join(ROOT, "tools", "predict.py"), "--config",
               os.path.join(ROOT, CONFIGS[args.variant]), "--model_path",
               os.path.join(export, "weights.pdparams"), "--image_path", photo, "--trimap_path",
               trimap, "--quiet"]
    infer = [os.path.join(ROOT, "deploy", "python", "infer.py"), "--config",
             os.path.join(export, "deploy.yaml"), "--image_path", photo, "--trimap_path", trimap]
    runs = [("tools/predict.py (first call: export + check)", predict + ["--save_dir", os.path.join(work, "p1")]),
            ("tools/predict.py (cached export)", predict + ["--save_dir", os.path.join(work, "p2")]),
            ("deploy/python/infer.py", infer + ["--save_dir", os.path.join(work, "i1")])]
    print(f"{size[1]}x{size[0]} photo, wide trimap, fp32, foreground estimated and RGBA written by both")
    print(f"{'command':48s} {'seconds':>8s} {'peak GiB':>8s}", flush=True)
    measured = {}
    for label, command in runs:
        seconds, peak, code, err = _timed_tool(command, env)
        if code != 0:
            print(f"{label:48s} failed: {(err.strip().splitlines() or ['?'])[-1]}")
            continue
        measured[label] = (seconds, peak)
        print(f"{label:48s} {seconds:8.1f} {peak / GIB:8.2f}", flush=True)
    ours, theirs = measured.get(runs[1][0]), measured.get(runs[2][0])
    if ours and theirs:
        time_ratio, mem_ratio = ours[0] / theirs[0], ours[1] / theirs[1]
        verdict = "met" if max(time_ratio, mem_ratio) <= GOAL_TOOL_RATIO else "NOT met"
        print(f"\npredict.py / infer.py: time {time_ratio:.2f}x, peak memory {mem_ratio:.2f}x "
              f"(goal <= {GOAL_TOOL_RATIO:g}x each): {verdict}")


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        if spec.get("shapes"):
            shapes_child(spec)
        else:
            (calibration_child if spec.get("calibrate") else child)(spec)
        return 0
    import paddle
    from ppmatting.deploy.predictor import cpu_supports_bf16

    usable, fast = cpu_supports_bf16()
    load = os.getloadavg()
    print(f"Paddle {paddle.__version__}, {os.cpu_count()} CPU(s), AVX512-BF16 "
          f"{'yes' if fast else 'no'}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"DIM {args.variant}, trained-like random weights (LSUV)", flush=True)
    work = args.work_dir or tempfile.mkdtemp(prefix="bench-large-photo-")
    os.makedirs(work, exist_ok=True)
    export = os.path.join(work, f"export_{args.variant}")
    try:
        if not os.path.isfile(os.path.join(export, "deploy.yaml")):
            export_trained_like(args.variant, export)
        if args.calibrate:
            calibrate(args, work)
        elif args.parity:
            parity_table(args)
        elif args.margins:
            margins_table(args, work, export)
        elif args.tools:
            tools_table(args, work, export)
        elif args.shapes:
            shapes_table(args, export)
        elif args.split:
            split_table(args, work)
        else:
            main_table(args, work, export)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
