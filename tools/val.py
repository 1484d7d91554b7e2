r"""Evaluate a zoo model, or saved predictions, with SAD, MSE, Grad and Conn.

    # a model on the config's val_dataset (or on --dataset_root/--val_file)
    python tools/val.py --config configs/dim/dim-vgg16.yml --model_path dim.pdparams \
        --save_dir output/val --save_results

    # predictions already saved as PNGs (any tool or paper), matched by file name
    python tools/val.py --dataset_root data/matting_demo --val_file val.txt \
        --pred_dir output/predict --save_dir output/val_pred

The list has lines ``image alpha [trimap]`` relative to --dataset_root. A prediction for image
``x.jpg`` is ``x.png`` (or ``x_alpha.png``, as tools/predict.py writes) in --pred_dir.
Before scoring, predictions are forced to the trimap in known regions and quantised to 8 bits;
samples without a trimap get one generated from the ground truth (the report says how many).

Writes into --save_dir: per_image.csv, summary.json, summary.md (also printed) and, with
--save_results, results/NAME.png (each alpha as scored). A sample that fails is listed at the end
and the others continue; the exit code is then 1.

DIM runs through its checked Paddle Inference export (the export cache of tools/predict.py;
--dygraph for the dynamic graph), on the whole image as the published evaluation does. Only an
image whose whole-image pass would not fit the memory budget (--max_memory_gb) runs in tiles
(--tiling off forbids that, --tiling on forces it), and the report lists it.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.core import val as core  # noqa: E402
from ppmatting.metrics import DEFAULT_TRIMAP_RADIUS, METRIC_NAMES  # noqa: E402
from ppmatting.utils.cli import add_config_arguments, add_tiling_arguments  # noqa: E402
from ppmatting.utils.errors import ConfigError, InputError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, config_help="model config (YAML); gives the model and, unless "
                         "--dataset_root/--val_file are given, the val_dataset")
    parser.add_argument("--dataset_root", default=None, help="folder the --val_file paths are "
                        "relative to")
    parser.add_argument("--val_file", default=None, help="list of 'image alpha [trimap]' lines")
    parser.add_argument("--pred_dir", default=None, help="score alphas saved in this folder "
                        "instead of running a model")
    parser.add_argument("--metrics", nargs="+", default=list(METRIC_NAMES), metavar="NAME",
                        help=f"metrics to compute (default: {' '.join(METRIC_NAMES)})")
    parser.add_argument("--save_dir", default="output/val", help="output folder")
    parser.add_argument("--save_results", action="store_true",
                        help="also write each scored alpha to SAVE_DIR/results/NAME.png")
    parser.add_argument("--num_workers", type=int, default=0,
                        help="threads reading files and scoring next to the model (0: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--dygraph", action="store_true",
                        help="run a network in Paddle's dynamic graph instead of its checked "
                             "Paddle Inference export")
    add_tiling_arguments(parser, tiling_help="auto (default): the whole image, as the published "
                         "evaluation does, and tiles only when it would not fit the memory "
                         "budget; on: always tiles; off: never")
    return parser.parse_args(argv)


def _validation_set(args, cfg=None):
    """(items or dataset, description) from --dataset_root/--val_file or the config (``cfg``,
    already parsed, or parsed here when only predictions are scored)."""
    if bool(args.dataset_root) != bool(args.val_file):
        raise InputError("--dataset_root and --val_file go together (the list's paths are relative "
                         "to the root)")
    if args.dataset_root:
        items = core.read_val_list(args.dataset_root, args.val_file)
        return items, f"{args.val_file} in {args.dataset_root} ({len(items)} samples)"
    if not args.config:
        raise InputError("nothing to evaluate on: give --dataset_root D --val_file LIST, or a "
                         "--config with a val_dataset")
    if cfg is None:
        from ppmatting.cvlibs.config import Config
        cfg = Config(args.config, opts=args.opts)
    dataset = cfg.val_dataset
    if dataset is None:
        raise ConfigError(f"{args.config}: no val_dataset; add one or give --dataset_root and "
                          f"--val_file")
    if getattr(dataset, "mode", "val") != "val":
        raise ConfigError(f"{args.config}: val_dataset.mode must be 'val' (got "
                          f"'{dataset.mode}')")
    where = getattr(dataset, "list_path", None) or type(dataset).__name__
    return dataset, f"{where} ({len(dataset)} samples, config {args.config})"


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    if not args.config and not args.pred_dir:
        raise InputError("nothing to score: give --config (a model to run) or --pred_dir (saved "
                         "predictions)")
    metrics = [m.lower() for m in args.metrics]
    cfg = model = None
    if args.dataset_root or args.val_file:  # a wrong list is reported before the model is built
        samples, dataset_text = _validation_set(args)
    if not args.pred_dir:
        from ppmatting.core.predict import load_matter
        from ppmatting.cvlibs.config import Config

        cfg = Config(args.config, opts=args.opts)
        matter = load_matter(args.config, args.model_path, args.opts, fast=not args.dygraph,
                             tiling_flags=args, log_plans=False, prefer_whole=True,
                             progress=False)
        model = matter.tiler or matter.model
    if not (args.dataset_root or args.val_file):
        samples, dataset_text = _validation_set(args, cfg)
    common = dict(metrics=metrics, save_dir=args.save_dir, save_results=args.save_results,
                  num_workers=args.num_workers, progress=not args.quiet,
                  trimap_radius=DEFAULT_TRIMAP_RADIUS, dataset_description=dataset_text)
    if args.pred_dir:
        if not os.path.isdir(args.pred_dir):
            raise InputError(f"{args.pred_dir}: prediction folder not found")
        if args.model_path:
            print("note: --pred_dir given, so the model is not run and --model_path is ignored")
        items = samples if isinstance(samples, list) else core.items_from_dataset(samples)
        if items is None:
            raise ConfigError(f"{args.config}: the val_dataset does not expose an 'image alpha "
                              f"[trimap]' file list; give --dataset_root and --val_file")
        print(f"scoring saved predictions in {args.pred_dir} against {dataset_text}", flush=True)
        summary = core.evaluate_predictions(items, args.pred_dir, **common)
    else:
        description = matter.description
        print(f"evaluating {description} on {dataset_text}", flush=True)
        summary = core.evaluate(model, samples, description=description, **common)

    print(core.format_markdown(summary), end="")
    print(core.summary_json(summary), end="")
    for kind, path in summary.get("files", {}).items():
        print(f"{kind}: {path}")
    if summary["failures"]:
        print(f"{summary['num_failed']} of {summary['num_samples']} samples failed:", file=sys.stderr)
        for failure in summary["failures"]:
            print(f"  {failure['name']}: {failure['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
