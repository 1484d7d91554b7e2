"""Small copies of the bundled validation set for TIPC's lite modes (seconds, not minutes, on a CPU).

Writes {image,alpha,trimap}/*.png and val.txt into --out (default test_tipc/data/lite): the four
bundled validation composites reduced to 128 px and, for two of them, to sizes that are not
multiples of 32 (120x100 and 100x136), so padding and mixed-size batches are exercised. Trimaps are remade from the
reduced alpha with the same rule as the bundled ones.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402

from ppmatting.transforms.trimap import trimap_from_alpha  # noqa: E402
from ppmatting.utils import io  # noqa: E402
from ppmatting.utils.errors import run_cli  # noqa: E402

SIZES_HW = [(128, 128), (120, 100), (128, 128), (100, 136)]


@run_cli
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(ROOT, "test_tipc", "data", "lite"),
                        help="folder to write (default test_tipc/data/lite)")
    out = parser.parse_args(argv).out
    source = os.path.join(ROOT, "data", "matting_demo")
    lines = []
    with open(os.path.join(source, "val.txt"), "r", encoding="utf-8") as handle:
        rows = [line.split() for line in handle if line.strip()]
    for (image_rel, alpha_rel, _), (height, width) in zip(rows, SIZES_HW):
        name = os.path.basename(image_rel)
        image = cv2.resize(io.read_image(os.path.join(source, image_rel)), (width, height),
                           interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(io.read_alpha(os.path.join(source, alpha_rel)), (width, height),
                           interpolation=cv2.INTER_AREA)
        alpha = io.to_uint8(alpha) / 255.0
        io.write_image(os.path.join(out, "image", name), image)
        io.write_image(os.path.join(out, "alpha", name), alpha)
        io.write_image(os.path.join(out, "trimap", name), trimap_from_alpha(alpha, 3, 7))
        lines.append(f"image/{name} alpha/{name} trimap/{name}")
    io.atomic_write_bytes(os.path.join(out, "val.txt"), ("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {len(lines)} lite validation samples to {out}")


if __name__ == "__main__":
    main()
