r"""Export a trained DIM to a Paddle Inference static graph (optionally ONNX) and check it.

    python tools/export.py --config configs/dim/dim-vgg16.yml --model_path dim.pdparams \
        --save_dir output/export
    python deploy/python/infer.py --config output/export/deploy.yaml --image_path photo.png \
        --trimap_path photo_trimap.png

Writes ``model.json`` + ``model.pdiparams`` (Paddle 3's format; named inputs ``img`` N x 3 x H x W
and ``trimap`` N x 1 x H x W, batch / height / width dynamic unless --input_shape fixes them) and
``deploy.yaml`` (the files, the inputs and their meaning, the pre-processing, the model name).
After saving it loads the graph with a Paddle Inference predictor, runs it at three sizes (one of
256x256, one a batch of two, one not a multiple of 32) next to the dynamic-graph model and compares
the alphas: at least --min_share (95%) of the pixels must agree within --within (1/255), the mean
difference must be at most --max_mean (0.002) and, if asked, no pixel may differ by more than
--max_diff (default 1: no bound). Otherwise it fails (exit 2, no deploy.yaml) saying what
differed. A share and a mean, not a maximum, because a few max-pool windows holding near-equal
values pick another element in oneDNN than in Paddle's own kernel, which moves a patch of pixels
(up to a few percent of them, by up to ~0.4) while the rest agree to 1e-5 (docs/deploy.md,
"Parity check").

--format onnx also writes model.onnx (paddle2onnx) for both DIM variants and checks ONNX Runtime
against the dynamic graph at the same sizes with the tie-robust criterion of
ppmatting/deploy/parity.py (the same --min_share, --max_mean and --max_diff); on failure the
file is removed and the Paddle export stays usable. Run it with deploy/python/infer.py --backend
onnxruntime. Needs the optional extra: pip install -e .[onnx] (docs/deploy.md).

Each variant is exported with its published procedure (deploy.yaml's preprocess.pad_multiple): the
paper's network padded to 32 as mmediting tests it, PaddleSeg's unpadded as PaddleSeg runs it.

Classical methods (closed-form, KNN, ...) are not networks and have nothing to export.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.deploy.parity import (DEFAULT_MAX_DIFF, DEFAULT_MAX_MEAN, DEFAULT_MIN_SHARE,  # noqa: E402
                                     DEFAULT_WITHIN)
from ppmatting.utils.cli import add_config_arguments  # noqa: E402
from ppmatting.utils.errors import run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, config_required=True,
                         config_help="model config, e.g. configs/dim/dim-vgg16.yml",
                         model_path_help="trained weights (.pdparams from tools/train.py or a "
                                         "published DIM checkpoint)")
    parser.add_argument("--save_dir", default="output/export", help="output folder")
    parser.add_argument("--input_shape", nargs=4, type=int, default=None,
                        metavar=("N", "C", "H", "W"),
                        help="fix the image input's shape (C = 3); default: N, H, W dynamic")
    parser.add_argument("--format", choices=("paddle", "onnx"), default="paddle",
                        help="onnx: also write model.onnx (paddle2onnx) and check it on ONNX "
                             "Runtime")
    parser.add_argument("--check_sizes", nargs="+", default=None, metavar="[N]xHxW",
                        help="sizes for the parity check (default 256x256 2x160x224 300x225)")
    parser.add_argument("--within", type=float, default=DEFAULT_WITHIN,
                        help="parity check: a pixel agrees when its alphas differ by at most "
                             "this (default 1/255)")
    parser.add_argument("--min_share", type=float, default=DEFAULT_MIN_SHARE,
                        help=f"parity check: share of pixels that must agree (default "
                             f"{DEFAULT_MIN_SHARE:g})")
    parser.add_argument("--max_mean", type=float, default=DEFAULT_MAX_MEAN,
                        help=f"parity check: largest mean alpha difference (default "
                             f"{DEFAULT_MAX_MEAN:g})")
    parser.add_argument("--max_diff", type=float, default=DEFAULT_MAX_DIFF,
                        help=f"parity check: largest alpha difference allowed anywhere (default "
                             f"{DEFAULT_MAX_DIFF:g}: no bound)")
    parser.add_argument("--random_weights", action="store_true",
                        help="export the untrained initial weights (speed tests only)")
    return parser.parse_args(argv)


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    import ppmatting  # noqa: F401  (fills the registries)
    from ppmatting.core.loader import load_model
    from ppmatting.deploy.export import export_model, parity_criterion, parse_check_sizes

    shapes = parse_check_sizes(args.check_sizes, args.input_shape)
    model = load_model(args.config, args.model_path, args.opts, networks_only=True,
                       random_weights=args.random_weights)
    print(f"exporting {type(model).__name__} ({getattr(model, 'variant', '?')}) from "
          f"{args.config}" + (f", weights {args.model_path}" if args.model_path else ""),
          flush=True)
    export_model(model, args.save_dir, input_shape=args.input_shape, check_shapes=shapes,
                 criterion=parity_criterion(args.within, args.min_share, args.max_diff,
                                            args.max_mean),
                 fmt=args.format, config_path=args.config,
                 weights=args.model_path, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
