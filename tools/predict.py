"""Matte photos with any zoo model: writes the alpha matte and a transparent cut-out per photo.

    python tools/predict.py --config configs/ml/closed_form.yml \
        --image_path data/matting_demo/demo/demo.png \
        --trimap_path data/matting_demo/demo/demo_trimap.png --save_dir output/predict

    python tools/predict.py --config configs/dim/dim-vgg16.yml --model_path dim.pdparams \
        --image_path photos/ --trimap_path trimaps/ --save_dir output/predict

--image_path is an image, a folder of images, or a .txt list (lines: ``image``, ``image trimap``
or ``image alpha trimap``; paths relative to the list's folder). For each photo ``x`` it writes
``x_alpha.png`` (8-bit gray; 16-bit with --alpha_16bit) and ``x_rgba.png`` (the estimated
foreground colour with the alpha, so no fringe of the old background). A photo that fails is
reported and the others continue; the exit code is then 1.

Without a trimap, make one from a rough subject mask: --trimap_from_mask MASK --unknown_width PX
(or tools/make_trimap.py).

DIM runs through its Paddle Inference export, made and checked against the dynamic graph on the
first call and kept in the export cache (~/.cache/ppmatting, or $PPMATTING_CACHE_DIR) for the
next ones; --dygraph runs the dynamic graph instead. Large photos: --tiling auto (the default)
runs the whole image when it fits the memory budget (--max_memory_gb) and is not slower, else
tiles guided by the trimap (--tile_size, --tile_margin); see docs/quick_start.md.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.core import predict as core  # noqa: E402
from ppmatting.core.writer import ResultWriter  # noqa: E402
from ppmatting.utils.errors import run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    core.add_model_arguments(parser)
    core.add_trimap_arguments(parser, "an image, a folder of images, or a .txt list of images")
    parser.add_argument("--save_dir", default="output/predict", help="output folder")
    parser.add_argument("--alpha_16bit", action="store_true",
                        help="save alpha and cut-out as 16-bit PNGs")
    parser.add_argument("--no_rgba", action="store_true",
                        help="save only the alpha (skips foreground estimation)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    core.check_unknown_width(args.unknown_width)
    # pair the inputs first: a wrong path is reported before the model is built
    jobs = core.collect_jobs(args.image_path, args.trimap_path, args.trimap_from_mask)
    matter = core.load_matter(args.config, args.model_path, args.opts, fast=not args.dygraph,
                              tiling_flags=args, progress=not args.quiet)
    core.check_trimaps_given(jobs, matter.needs_trimap)
    print(f"{len(jobs)} image(s), {matter.description}", flush=True)
    writer = ResultWriter(args.save_dir, bits=16 if args.alpha_16bit else 8,
                          save_rgba=not args.no_rgba)
    summary = core.predict(matter.matte, jobs, writer, needs_trimap=matter.needs_trimap,
                           unknown_width=args.unknown_width, progress=not args.quiet,
                           keep_going=len(jobs) > 1)
    if len(summary.done) == 1 and not summary.failed:
        for kind, path in summary.done[0].paths.items():
            print(f"{kind}: {path}")
    elif summary.done:
        print(f"saved {len(summary.done)} result(s) to {args.save_dir}")
    if summary.failed:
        print(f"{len(summary.failed)} of {len(jobs)} image(s) failed:", file=sys.stderr)
        for _, message in summary.failed:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
