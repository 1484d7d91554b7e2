"""Turn a rough binary subject mask (e.g. from a segmentation model) into a trimap for matting.

    python tools/make_trimap.py --mask person_mask.png --unknown_width 12 --save_path person_trimap.png
    python tools/make_trimap.py --mask masks/ --unknown_width 12 --save_path trimaps/

The mask's edge becomes an unknown band (gray 128) ``--unknown_width`` pixels wide on each side:
erosion of the mask by a disc of that radius is sure foreground (255), outside its dilation is sure
background (0). Pick a width that covers hair and the mask's own errors; wider bands are safer but
slower and leave more to the matting model. Mask pixels count as subject when brighter than half
(uint8 > 127). For a folder, trimaps are saved under the masks' names (a ``_mask`` suffix is
dropped) so that tools/predict.py --trimap_path pairs them with the photos.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.transforms.trimap import trimap_from_mask  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir, list_images, read_alpha, write_image  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mask", required=True, help="mask image, or a folder of masks")
    parser.add_argument("--unknown_width", type=int, default=10, metavar="PX",
                        help="half-width of the unknown band in pixels (default 10)")
    parser.add_argument("--save_path", required=True,
                        help="trimap file (.png), or a folder (the trimap keeps the mask's name)")
    return parser.parse_args(argv)


def trimap_name(mask_path):
    stem = os.path.splitext(os.path.basename(mask_path))[0]
    if stem.endswith("_mask") and len(stem) > len("_mask"):
        stem = stem[:-len("_mask")]
    return stem + ".png"


def make_one(mask_path, save_path, unknown_width):
    """Read a mask, write its trimap; returns (fraction unknown, save_path)."""
    mask01 = read_alpha(mask_path)
    trimap_u8 = trimap_from_mask(mask01, unknown_width)
    if not (trimap_u8 == 128).any():
        raise InputError(f"{mask_path}: the mask has no edge (empty or all subject); "
                         f"no trimap made")
    write_image(save_path, trimap_u8)
    return float((trimap_u8 == 128).mean()), save_path


@run_cli
def main(argv=None):
    args = parse_args(argv)
    if args.unknown_width < 1:
        raise InputError(f"--unknown_width must be at least 1 pixel, got {args.unknown_width}")
    if os.path.isdir(args.mask):
        masks = list_images(args.mask)
        if not masks:
            raise InputError(f"{args.mask}: folder holds no images")
        if os.path.isfile(args.save_path):
            raise InputError(f"{args.save_path}: is a file; for a folder of masks give a folder")
        targets = [(m, os.path.join(args.save_path, trimap_name(m))) for m in masks]
    else:
        if not os.path.exists(args.mask):
            raise InputError(f"{args.mask}: mask file not found")
        ext = os.path.splitext(args.save_path)[1].lower()
        if os.path.isdir(args.save_path) or not ext:  # a folder (created when missing)
            target = os.path.join(args.save_path, trimap_name(args.mask))
        elif ext != ".png":
            raise InputError(f"{args.save_path}: save a trimap as .png (a lossy format would blur "
                             f"its three levels)")
        else:
            target = args.save_path
        targets = [(args.mask, target)]
    check_output_dir(os.path.dirname(targets[0][1]) or ".", "--save_path")
    failed = 0
    for mask_path, save_path in targets:
        try:
            unknown, path = make_one(mask_path, save_path, args.unknown_width)
            print(f"{path}: {unknown:.1%} unknown")
        except InputError as err:
            if len(targets) == 1:
                raise
            failed += 1
            print(f"error: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
