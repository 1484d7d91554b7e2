"""TIPC accuracy checks, run after train -> eval -> export -> infer.

1. The validation SAD (``eval/summary.json``) must be close to the value the config stores
   (``expected_val_sad`` for the mode, within the relative tolerance ``val_sad_rel_tol``), and for
   a trained network clearly below the SAD of the same network before training: the config's model
   built right after seeding with the training seed (``train_seed``), no weights loaded, scored on
   the same val set; the trained one must be at least ``min_val_sad_gain`` (a fraction) lower.
   An untrained network fails the second test, and a constant or otherwise wrong prediction the
   first (see docs/test_tipc.md for the numbers).
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


def measured_sad(out_dir):
    """The SAD that the run's eval step (tools/val.py) wrote to ``OUT/eval/summary.json``."""
    summary_path = os.path.join(out_dir, "eval", "summary.json")
    if not os.path.isfile(summary_path):
        raise PPMattingError(f"{summary_path}: not found (did the eval step fail?)")
    with open(summary_path, "r", encoding="utf-8") as handle:
        return float(json.load(handle)["metrics"]["sad"])


def untrained_sad(model_config, seed, opts=None):
    """SAD of the network a seeded training starts from: the config's model built right after
    ``seed_everything(seed)`` (as tools/train.py builds it), no weights loaded, evaluated on the
    config's val set with the code tools/val.py runs."""
    from ppmatting.core.loader import load_config_and_model
    from ppmatting.core.train import seed_everything
    from ppmatting.core.val import evaluate
    seed_everything(int(seed))
    cfg, model = load_config_and_model(model_config, opts=opts, networks_only=True,
                                       random_weights=True)
    return float(evaluate(model, cfg.val_dataset, progress=False)["metrics"]["sad"])


def judge_sad(measured, expected, rel_tol, untrained=None, min_gain=None):
    """(verdict, lines): ``measured`` within ``rel_tol`` of ``expected``, and, when ``untrained`` is
    given, at most ``(1 - min_gain) * untrained``."""
    low, high = expected * (1 - rel_tol), expected * (1 + rel_tol)
    close = low <= measured <= high
    lines = [f"validation SAD {measured:.4f}; stored {expected:.4f} +- {rel_tol:.1%} -> "
             f"[{low:.4f}, {high:.4f}]: {'ok' if close else 'OUT OF RANGE'}"]
    improved = True
    if untrained is not None:
        bound = untrained * (1 - min_gain)
        improved = measured <= bound
        lines.append(f"the same network before training (same seed, same data): SAD "
                     f"{untrained:.4f}; trained must be {min_gain:.0%} lower, <= {bound:.4f}: "
                     f"{'ok' if improved else 'NOT TRAINED ENOUGH'} "
                     f"({1 - measured / untrained:.1%} lower)")
    return close and improved, lines


def check_sad(config_path, mode, out_dir):
    measured = measured_sad(out_dir)
    expected = tipc_value(config_path, "expected_val_sad", mode)
    if expected is None or expected == "TBD":
        print(f"{config_path}: no expected_val_sad stored for {mode}; this run measured "
              f"{measured:.4f}")
        return False
    rel_tol = float(tipc_value(config_path, "val_sad_rel_tol") or 0.1)
    untrained, min_gain = None, None
    if tipc_value(config_path, "trainer") and mode != "whole_infer":
        seed = tipc_value(config_path, "train_seed")
        min_gain = tipc_value(config_path, "min_val_sad_gain")
        if seed is None or min_gain is None:
            raise PPMattingError(f"{config_path}: a trained model needs train_seed and "
                                 f"min_val_sad_gain (the check against the untrained network)")
        untrained = untrained_sad(os.path.join(ROOT, tipc_value(config_path, "accuracy_config")),
                                  seed)
        min_gain = float(min_gain)
    verdict, lines = judge_sad(measured, float(expected), rel_tol, untrained, min_gain)
    print("\n".join(lines))
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
