"""Command-line pieces every tool shares: PaddleSeg's flag names defined once, argparse types.

``--config`` (YAML), ``--model_path`` (weights, or an export folder where a tool takes one) and
``--opts KEY=VALUE`` mean the same in every tool; :func:`add_config_arguments` adds them.
"""
import argparse

CONFIG_HELP = "model config (YAML), e.g. configs/ml/closed_form.yml or configs/dim/dim-vgg16.yml"
MODEL_PATH_HELP = ("trained weights for a network (.pdparams from tools/train.py, or a published "
                   "DIM checkpoint); classical methods take none")
OPTS_HELP = "override config keys, e.g. --opts model.lambda_value=50 iters=100"


def add_config_arguments(parser, config_required=False, model_path=True, config_help=CONFIG_HELP,
                         model_path_help=MODEL_PATH_HELP):
    """Add ``--config``, ``--opts`` and (``model_path=True``) ``--model_path`` to ``parser``."""
    parser.add_argument("--config", required=config_required, default=None, help=config_help)
    if model_path:
        parser.add_argument("--model_path", default=None, help=model_path_help)
    parser.add_argument("--opts", nargs="+", default=None, metavar="KEY=VALUE", help=OPTS_HELP)
    return parser


def str2bool(text):
    """argparse type for ``--flag true|false`` (PaddleSeg's deploy flags take a value)."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on", "y"):
        return True
    if value in ("0", "false", "no", "off", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def hw(text):
    """argparse type for ``HxW`` sizes -> ``(height, width)``."""
    try:
        height, width = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 512x512), got '{text}'") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected positive HxW, got '{text}'")
    return height, width


def add_tiling_arguments(parser, tiling_help=None):
    """``--tiling --tile_size --tile_margin --max_memory_gb``: how a network runs on large photos
    (``ppmatting.deploy.tiling``). Defaults are None so that the config's ``test_config`` keys of
    the same names apply when a flag is not given."""
    from ppmatting.deploy.tiling import DEFAULT_MARGINS, TILING_MODES

    group = parser.add_argument_group("large photos (networks)")
    group.add_argument("--tiling", choices=TILING_MODES, default=None,
                       help=tiling_help or "auto (default): the whole image when it fits the "
                       "memory budget and is not slower, else tiles guided by the trimap; on: "
                       "always tiles; off: never")
    group.add_argument("--tile_size", type=int, default=None, metavar="PX",
                       help="largest tile core in pixels, a multiple of 32 (default: the "
                            "largest that fits the budget and runs fewest pixels)")
    group.add_argument("--tile_margin", type=int, default=None, metavar="PX",
                       help="context around each tile core, a multiple of 32 (default: "
                            + ", ".join(f"{v} for {k}" for k, v in DEFAULT_MARGINS.items())
                            + " DIM, measured to keep tiles equal to the whole image)")
    group.add_argument("--max_memory_gb", type=float, default=None, metavar="GB",
                       help="peak memory allowed (default: this process plus 70%% of the memory "
                            "available)")
    return parser
