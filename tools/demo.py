"""The five-minute demo: matte the bundled demo photo and put it on new backgrounds.

    python tools/demo.py                                  # closed-form matting, no weights needed
    python tools/demo.py --model_path dim.pdparams        # DIM (configs/dim/dim-vgg16.yml)

Uses data/matting_demo/demo/demo.png with its trimap, estimates the foreground colour, composites it
onto data/matting_demo/demo/new_background.jpg and onto a plain colour, writes a side-by-side
comparison and scores the alpha against the bundled ground truth. Prints where everything is.
The same steps for your own photo: tools/bg_replace.py (one photo) and tools/predict.py (folders).
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.core import predict as core  # noqa: E402
from ppmatting.apps.background import parse_background  # noqa: E402
from ppmatting.core.writer import Composite, ResultWriter  # noqa: E402
from ppmatting.utils.errors import run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir, read_alpha  # noqa: E402

DEMO_DIR = os.path.join(ROOT, "data", "matting_demo", "demo")
CLASSICAL_CONFIG = os.path.join(ROOT, "configs", "ml", "closed_form.yml")
DIM_CONFIG = os.path.join(ROOT, "configs", "dim", "dim-vgg16.yml")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_path", default=None,
                        help="DIM weights; without them the demo uses closed-form matting")
    parser.add_argument("--config", default=None,
                        help=f"model config (default {os.path.relpath(CLASSICAL_CONFIG, ROOT)}, "
                             f"or {os.path.relpath(DIM_CONFIG, ROOT)} with --model_path)")
    parser.add_argument("--color", default="dodgerblue",
                        help="the plain-colour background (name, #rrggbb or r,g,b)")
    parser.add_argument("--save_dir", default=os.path.join("output", "demo"), help="output folder")
    return parser.parse_args(argv)


def shown(path):
    """``path`` relative to the working directory when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    start = time.perf_counter()
    config = args.config or (DIM_CONFIG if args.model_path else CLASSICAL_CONFIG)
    backgrounds = [parse_background(os.path.join(DEMO_DIR, "new_background.jpg")),
                   parse_background(args.color)]
    job = core.Job(image_path=os.path.join(DEMO_DIR, "demo.png"), name="demo",
                   trimap_path=os.path.join(DEMO_DIR, "demo_trimap.png"))
    matter = core.load_matter(shown(config), args.model_path)
    print(f"matting {shown(job.image_path)} with {matter.description} ...", flush=True)
    image01, trimap_u8 = core.read_job(job, matter.needs_trimap)
    alpha01 = core.matte_one(matter.matte, image01, trimap_u8, job.image_path)
    writer = ResultWriter(args.save_dir,
                          composites=[Composite(bg, f"{{name}}_bg_{bg.tag}.jpg") for bg in backgrounds],
                          compare_name="{name}_compare.jpg")
    paths = writer.save(job.name, image01, alpha01, trimap_u8).paths

    from ppmatting.metrics import compute_metrics
    truth01 = read_alpha(os.path.join(DEMO_DIR, "demo_alpha.png"))
    scores = compute_metrics(alpha01, truth01, trimap_u8, metrics=("sad", "mse"))
    print(f"alpha vs. the bundled ground truth: SAD {scores['sad']:.2f}, MSE {scores['mse']:.4f} "
          f"(over the trimap's unknown region)")
    width = max(len(kind) for kind in paths)
    for kind, path in paths.items():
        print(f"  {kind:<{width}}  {path}")
    print(f"done in {time.perf_counter() - start:.1f} s; next: tools/bg_replace.py for your own "
          f"photo (see docs/bg_replace.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
