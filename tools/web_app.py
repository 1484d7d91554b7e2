"""A local web page for interactive matting: upload or paint a trimap, pick a model, get the alpha,
the cut-out and the subject on a new background (needs the web extra: pip install -e ".[web]").

    python tools/web_app.py                                   # the classical zoo, closed-form first
    python tools/web_app.py --model_path dim.pdparams         # adds DIM (configs/dim/dim-vgg16.yml)
    python tools/web_app.py --config configs/ml/knn.yml --port 7861

Prints the page's URL (http://127.0.0.1:7860 by default) and serves until Ctrl+C. It listens on
127.0.0.1 only unless --host says otherwise, makes no public link, sends no analytics and needs no
internet. Weights are given here, never through the page (a weights file is a pickle). Uploads and
results stay in one temporary folder (--temp_dir, else a new one removed at exit); requests run one
at a time. See docs/web_app.md.
"""
import argparse
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.apps.web_matting import (DEFAULT_MAX_PHOTO_PIXELS,  # noqa: E402
                                        DEFAULT_SCRIBBLE_PIXELS, SCRIBBLE_PIXEL_RANGE)
from ppmatting.utils.cli import add_config_arguments  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, config_help=(
        "a model config to list first and select (default: the zoo's classical methods, "
        "closed-form selected; configs/dim/dim-vgg16.yml with --model_path)"), model_path_help=(
        "DIM weights (.pdparams from tools/train.py, a published DIM checkpoint) or a "
        "tools/export.py folder: adds DIM to the page"))
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--temp_dir", default=None,
                        help="folder for uploads and results (default: a new temporary folder, "
                             "removed at exit)")
    parser.add_argument("--max_photo_pixels", type=int, default=DEFAULT_MAX_PHOTO_PIXELS,
                        help="refuse larger photos, before decoding them (default "
                             f"{DEFAULT_MAX_PHOTO_PIXELS:,})")
    parser.add_argument("--max_memory_gb", type=float, default=None,
                        help="memory budget of one classical solve; a larger one is refused with "
                             "the solve scale that fits (default: 70%% of available memory)")
    parser.add_argument("--scribble_pixels", type=int, default=DEFAULT_SCRIBBLE_PIXELS,
                        help="scribbles: solve at most this many pixels, upsample the rest "
                             f"(default {DEFAULT_SCRIBBLE_PIXELS:,}; the page has a slider)")
    parser.add_argument("--no_warmup", action="store_true",
                        help="do not load the default model before serving")
    return parser.parse_args(argv)


@run_cli
def main(argv=None):
    args = parse_args(argv)
    if args.opts:
        raise InputError("--opts is not taken here: the page sets the model's parameters")
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: expected 1-65535")
    if args.max_photo_pixels < 1:
        raise InputError(f"--max_photo_pixels {args.max_photo_pixels}: expected a positive number")
    if args.max_memory_gb is not None and not args.max_memory_gb > 0:
        raise InputError(f"--max_memory_gb {args.max_memory_gb}: expected a positive number")
    for flag, path in (("--config", args.config), ("--model_path", args.model_path)):
        if path and not os.path.exists(path):
            raise InputError(f"{path}: {flag} not found")
    low, high = SCRIBBLE_PIXEL_RANGE
    if not low <= args.scribble_pixels <= high:
        raise InputError(f"--scribble_pixels {args.scribble_pixels}: expected {low:,} to {high:,}")
    # only look for Gradio here: importing it now would fix its temp dir before ours is set
    if importlib.util.find_spec("gradio") is None:
        raise InputError('the web app needs Gradio: pip install -e ".[web]"')
    from ppmatting.apps.web_app import Settings, serve

    settings = Settings(config=args.config, model_path=args.model_path, host=args.host,
                        port=args.port, temp_dir=args.temp_dir,
                        max_photo_pixels=args.max_photo_pixels, max_memory_gb=args.max_memory_gb,
                        scribble_pixels=args.scribble_pixels, warmup=not args.no_warmup)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
