"""TIPC accuracy checks, run after train -> eval -> export -> infer.

1. Validation SAD after lite training is within the stored tolerance of the value the config
   stores (``expected_val_sad`` for the mode, relative tolerance ``val_sad_rel_tol``).
2. The exported graph gives the trained model's alpha: the dynamic-graph model (``accuracy_config``
   + the trained weights) and the Paddle Inference predictor are run on the inference rows'
   photos at full size and on a crop whose sides are not multiples of 32; the largest difference
   is printed and must not exceed ``export_max_diff``.
3. Every inference run's saved ``<name>_alpha.png`` equals the dynamic-graph alpha rounded to 8 bits
   within one level (rounding of values that sit on a half level may go either way).

    python test_tipc/check_accuracy.py --tipc_config CONFIG --mode MODE --output OUT [--model_path W]
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from ppmatting.utils import io  # noqa: E402
from ppmatting.utils.errors import PPMattingError, run_cli  # noqa: E402


def tipc_value(config_path, key, mode=None):
    """The value of ``key:`` in a TIPC config, resolved for ``mode`` (``a=1|b=2``); None for null."""
    with open(config_path, "r", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                value = line.rstrip("\n").split(":", 1)[1]
                if mode and f"{mode}=" in value:
                    value = dict(part.split("=", 1) for part in value.split("|"))[mode]
                return None if value in ("", "null") else value
    return None


def check_sad(config_path, mode, out_dir):
    summary_path = os.path.join(out_dir, "eval", "summary.json")
    if not os.path.isfile(summary_path):
        raise PPMattingError(f"{summary_path}: not found (did the eval step fail?)")
    with open(summary_path, "r", encoding="utf-8") as handle:
        measured = json.load(handle)["metrics"]["sad"]
    expected = tipc_value(config_path, "expected_val_sad", mode)
    tolerance = float(tipc_value(config_path, "val_sad_rel_tol") or 0.1)
    if expected is None or expected == "TBD":
        print(f"{config_path}: no expected_val_sad stored for {mode}; this run measured "
              f"{measured:.4f}")
        return False
    expected = float(expected)
    low, high = expected * (1 - tolerance), expected * (1 + tolerance)
    verdict = low <= measured <= high
    print(f"validation SAD {measured:.4f}; stored {expected:.4f} +- {tolerance:.0%} "
          f"-> [{low:.4f}, {high:.4f}]: {'ok' if verdict else 'OUT OF RANGE'}")
    return verdict


def inference_pairs(config_path, mode):
    """(name, image01, trimap_u8) for the photos the inference rows ran on, paired by name."""
    image_dir = os.path.join(ROOT, tipc_value(config_path, "--image_path", mode))
    trimap_dir = os.path.join(ROOT, tipc_value(config_path, "--trimap_path", mode))
    pairs = []
    for image_path in io.list_images(image_dir):
        name = os.path.splitext(os.path.basename(image_path))[0]
        pairs.append((name, io.read_image(image_path),
                      io.read_trimap(os.path.join(trimap_dir, os.path.basename(image_path)))))
    return pairs


def check_export(config_path, mode, out_dir, model_path):
    from ppmatting.core.loader import load_model
    from ppmatting.deploy.info import load_deploy_info
    from ppmatting.deploy.predictor import MattingPredictor

    bound = float(tipc_value(config_path, "export_max_diff") or 1e-4)
    model = load_model(os.path.join(ROOT, tipc_value(config_path, "accuracy_config")), model_path)
    predictor = MattingPredictor(load_deploy_info(os.path.join(out_dir, "export")))
    worst = 0.0
    dygraph = {}
    for name, image01, trimap_u8 in inference_pairs(config_path, mode):
        # full size, and a crop whose sides are not multiples of 32
        height, width = trimap_u8.shape
        uneven = (slice(0, height - 5 if height % 32 == 5 else height - 3), slice(2, width - 1))
        for crop in ((slice(None), slice(None)), uneven):
            alpha_dy = model.predict(image01[crop], trimap_u8[crop])
            alpha_ex = predictor.predict(image01[crop], trimap_u8[crop])
            worst = max(worst, float(np.abs(alpha_dy - alpha_ex).max()))
        dygraph[name] = model.predict(image01, trimap_u8)
    verdict = worst <= bound
    print(f"exported vs trained model: max |alpha difference| {worst:.2e} over "
          f"{len(dygraph)} photos x 2 sizes (bound {bound:.0e}): {'ok' if verdict else 'TOO LARGE'}")
    return verdict, dygraph


def check_infer_outputs(out_dir, dygraph):
    ok = True
    folders = sorted(glob.glob(os.path.join(out_dir, "infer_*")))
    for folder in folders:
        worst = 0
        for name, alpha in dygraph.items():
            saved = os.path.join(folder, f"{name}_alpha.png")
            if not os.path.isfile(saved):
                print(f"{saved}: missing")
                ok = False
                continue
            written = np.round(io.read_alpha(saved) * 255).astype(np.int32)
            worst = max(worst, int(np.abs(written - io.to_uint8(alpha).astype(np.int32)).max()))
        print(f"{os.path.basename(folder)}: saved alpha vs trained model, max {worst}/255")
        ok &= worst <= 1
    return ok


@run_cli
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tipc_config", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--output", required=True, help="the TIPC run's output folder")
    parser.add_argument("--model_path", default=None, help="trained weights (networks)")
    args = parser.parse_args()
    results = [check_sad(args.tipc_config, args.mode, args.output)]
    if os.path.isfile(os.path.join(args.output, "export", "deploy.yaml")):
        verdict, dygraph = check_export(args.tipc_config, args.mode, args.output, args.model_path)
        results += [verdict, check_infer_outputs(args.output, dygraph)]
    if not all(results):
        print("accuracy checks failed", file=sys.stderr)
        sys.exit(1)
    print("accuracy checks passed")


if __name__ == "__main__":
    main()
