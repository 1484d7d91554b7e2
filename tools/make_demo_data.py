"""Regenerate the bundled demo dataset under data/matting_demo/ (deterministic, a few MB).

Foregrounds are synthetic objects with exact alpha and hard edges (fur, long hair, semi-transparent
veils, motion blur, smoke; see ppmatting/utils/synthetic.py). Backgrounds are real photographs
bundled with scikit-image (public domain or CC0 images from its data module).

    python tools/make_demo_data.py [--out data/matting_demo] [--seed 2017]
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ppmatting.transforms.trimap import trimap_from_alpha  # noqa: E402
from ppmatting.utils import io  # noqa: E402
from ppmatting.utils.errors import run_cli  # noqa: E402
from ppmatting.utils.compose import composite  # noqa: E402
from ppmatting.utils.synthetic import make_foreground  # noqa: E402

TRAIN_BACKGROUNDS = ["astronaut", "coffee", "rocket", "hubble_deep_field", "camera",
                     "immunohistochemistry"]
VAL_BACKGROUNDS = ["chelsea", "retina"]
TRAIN_KINDS = ["furry", "hair", "veil", "motion", "smoke"] * 2
VAL_KINDS = ["furry", "hair", "veil", "smoke"]


def load_background(name, short_side):
    import skimage.data
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3].astype(np.float32) / 255.0
    scale = short_side / min(image.shape[:2])
    size = (int(round(image.shape[1] * scale)), int(round(image.shape[0] * scale)))
    return np.clip(cv2.resize(image, size, interpolation=cv2.INTER_AREA), 0, 1)


def cover_crop(bg01, hw, rng):
    height, width = hw
    scale = max(height / bg01.shape[0], width / bg01.shape[1])
    if scale > 1:
        bg01 = cv2.resize(bg01, (int(np.ceil(bg01.shape[1] * scale)), int(np.ceil(bg01.shape[0] * scale))),
                          interpolation=cv2.INTER_CUBIC)
    top = int(rng.integers(bg01.shape[0] - height + 1))
    left = int(rng.integers(bg01.shape[1] - width + 1))
    return np.clip(bg01[top:top + height, left:left + width], 0, 1)


def write_lines(path, lines):
    io.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


@run_cli
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "data", "matting_demo"))
    parser.add_argument("--seed", type=int, default=2017)
    args = parser.parse_args()
    io.check_output_dir(args.out, "--out")
    rng = np.random.default_rng(args.seed)
    out = args.out

    train_lines, bg_lines = [], []
    for name in TRAIN_BACKGROUNDS:
        bg = load_background(name, 320)
        io.write_image(os.path.join(out, "bg", f"{name}.jpg"), bg, jpeg_quality=88)
        bg_lines.append(f"bg/{name}.jpg")
    for index, kind in enumerate(TRAIN_KINDS):
        fg, alpha = make_foreground(kind, (256, 256), rng)
        stem = f"{index:02d}_{kind}"
        io.write_image(os.path.join(out, "fg", f"{stem}.png"), fg)
        io.write_image(os.path.join(out, "alpha", f"{stem}.png"), alpha)
        train_lines.append(f"fg/{stem}.png alpha/{stem}.png")
    write_lines(os.path.join(out, "train.txt"), train_lines)
    write_lines(os.path.join(out, "bg.txt"), bg_lines)

    val_lines = []
    for index, kind in enumerate(VAL_KINDS):
        fg, alpha = make_foreground(kind, (320, 320), rng)
        bg = cover_crop(load_background(VAL_BACKGROUNDS[index % 2], 360), (320, 320), rng)
        fg8 = np.round(fg * 255) / 255
        image = composite(fg8, alpha, bg)
        trimap = trimap_from_alpha(alpha, 7, 15)
        stem = f"{index:02d}_{kind}"
        io.write_image(os.path.join(out, "val", "image", f"{stem}.png"), image)
        io.write_image(os.path.join(out, "val", "alpha", f"{stem}.png"), alpha)
        io.write_image(os.path.join(out, "val", "fg", f"{stem}.png"), fg8)
        io.write_image(os.path.join(out, "val", "bg", f"{stem}.png"), bg)
        io.write_image(os.path.join(out, "val", "trimap", f"{stem}.png"), trimap)
        val_lines.append(f"val/image/{stem}.png val/alpha/{stem}.png val/trimap/{stem}.png")
    write_lines(os.path.join(out, "val.txt"), val_lines)

    fg, alpha = make_foreground("furry", (360, 400), rng)
    bg = cover_crop(load_background("chelsea", 420), (360, 400), rng)
    fg8 = np.round(fg * 255) / 255
    io.write_image(os.path.join(out, "demo", "demo.png"), composite(fg8, alpha, bg))
    io.write_image(os.path.join(out, "demo", "demo_trimap.png"), trimap_from_alpha(alpha, 9, 17))
    io.write_image(os.path.join(out, "demo", "demo_alpha.png"), alpha)
    io.write_image(os.path.join(out, "demo", "new_background.jpg"), load_background("coffee", 400),
                   jpeg_quality=88)
    print(f"wrote the demo dataset to {out}: {len(train_lines)} training foregrounds, "
          f"{len(bg_lines)} backgrounds, {len(val_lines)} validation images, 1 demo image")


if __name__ == "__main__":
    main()
