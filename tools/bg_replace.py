"""Cut the subject out of a photo and put it on a new background.

    python tools/bg_replace.py --config configs/ml/closed_form.yml \
        --image_path data/matting_demo/demo/demo.png \
        --trimap_path data/matting_demo/demo/demo_trimap.png \
        --background data/matting_demo/demo/new_background.jpg "#1e90ff" blur:12 \
        --save_dir output/bg_replace --compare

--background takes one or more of: a colour name (white, gray, dodgerblue, ...), #rrggbb, r,g,b
(0-255), an image file, or blur:SIGMA (the photo's own background blurred: a portrait effect). An
image background keeps its aspect ratio: it is scaled to cover the photo and centre-cropped
(--bg_fit cover, the default), or stretched (--bg_fit stretch), or repeated (--bg_fit tile).

The composite is alpha*F + (1-alpha)*B with F the *estimated foreground colour*, not the photo: in
semi-transparent hair the photo's pixels still hold the old background, which would show as a fringe.

Writes, in --save_dir: ``x_alpha.png``, ``x_rgba.png`` (the cut-out), one composite per background
(``x_bg_<name>.png``; --save_name picks the name, and .jpg gives JPEG) and with --compare
``x_compare.<ext>`` (photo, trimap, alpha and composites side by side). Nothing is written when
anything fails.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.core import predict as core  # noqa: E402
from ppmatting.apps.background import BACKGROUND_HELP, FIT_MODES, parse_background  # noqa: E402
from ppmatting.core.writer import Composite, ResultWriter  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402

OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    core.add_model_arguments(parser)
    core.add_trimap_arguments(parser, "the photo (one image file)")
    parser.add_argument("--background", nargs="+", required=True, metavar="BG",
                        help=BACKGROUND_HELP + "; several give one composite each")
    parser.add_argument("--bg_fit", choices=FIT_MODES, default="cover",
                        help="how an image background is fitted to the photo (default cover: keep "
                             "the aspect ratio, scale to cover, crop the centre)")
    parser.add_argument("--save_dir", default="output/bg_replace", help="output folder")
    parser.add_argument("--save_name", default=None,
                        help="composite file name (.png or .jpg); with several backgrounds each "
                             "background's name is added before the extension")
    parser.add_argument("--compare", action="store_true",
                        help="also write photo | trimap | alpha | composite(s) side by side")
    return parser.parse_args(argv)


def composite_paths(save_dir, stem, backgrounds, save_name=None):
    """Output path per background. Raises InputError for an extension that is not PNG or JPEG."""
    if save_name:
        if os.path.basename(save_name) != save_name or save_name in (".", ".."):
            # a folder in the name would silently be dropped (or escape --save_dir): refuse it
            raise InputError(f"--save_name {save_name}: give a file name only; the folder goes in "
                             f"--save_dir")
        base, ext = os.path.splitext(save_name)
        if ext.lower() not in OUTPUT_EXTENSIONS:
            raise InputError(f"--save_name {save_name}: use a .png or .jpg name "
                             f"(the extension picks the format)")
        if len(backgrounds) == 1:
            return [os.path.join(save_dir, base + ext)], ext
        names = [f"{base}_{bg.tag}{ext}" for bg in backgrounds]
    else:
        ext = ".png"
        names = [f"{stem}_bg_{bg.tag}{ext}" for bg in backgrounds]
    # two backgrounds with the same tag (e.g. two files named bg.jpg) must not overwrite each other
    seen = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        if count:
            root, extension = os.path.splitext(name)
            name = f"{root}_{count + 1}{extension}"
        unique.append(name)
    return [os.path.join(save_dir, name) for name in unique], ext


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    core.check_unknown_width(args.unknown_width)
    if os.path.isdir(args.image_path) or args.image_path.lower().endswith(core.LIST_EXTENSIONS):
        raise InputError(f"{args.image_path}: bg_replace takes one photo; for folders and lists "
                         f"use tools/predict.py, which writes the cut-outs")
    # everything that can be checked without matting is checked first, so a typo in the last
    # --background costs nothing and leaves nothing half-written
    jobs = core.collect_jobs(args.image_path, args.trimap_path, args.trimap_from_mask)
    job = jobs[0]
    backgrounds = [parse_background(spec) for spec in args.background]
    out_paths, ext = composite_paths(args.save_dir, job.name, backgrounds, args.save_name)
    matter = core.load_matter(args.config, args.model_path, args.opts, fast=not args.dygraph,
                              tiling_flags=args)
    image01, trimap_u8 = core.read_job(job, matter.needs_trimap, args.unknown_width)

    alpha01 = core.matte_one(matter.matte, image01, trimap_u8, job.image_path)
    writer = ResultWriter(args.save_dir, bg_fit=args.bg_fit,
                          composites=[Composite(bg, os.path.basename(path))
                                      for bg, path in zip(backgrounds, out_paths)],
                          compare_name=f"{job.name}_compare{ext}" if args.compare else None)
    written = list(writer.save(job.name, image01, alpha01, trimap_u8).paths.values())
    print(f"matted {job.image_path} with {matter.description}")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
