r"""Convert a published DIM checkpoint to ppmatting's names.

    python tools/convert_weights.py --from mmediting \
        dim_stage3_v16_pln_1x1_1000k_comp1k_SAD-50.6_20200609_111851-647f24b6.pth dim-vgg16.pdparams
    python tools/convert_weights.py --from paddleseg dim-vgg16.pdparams dim-vgg16-paddleseg.pdparams

Every tensor is renamed (``module.`` prefixes stripped, a ``state_dict`` wrapper unwrapped) and
checked against the network it belongs to: by default the mmediting or PaddleSeg DIM, with the
refiner when the file has refiner tensors (stage 2/3) and without it otherwise (stage 1); or the
model of ``--config``. Missing tensors and shape mismatches stop the tool before anything is
written; tensors the network does not have are listed and dropped.

A ``.pth`` is read without PyTorch (zip or legacy format; ``ppmatting.weights.torch_files``). Every
pickle inside a checkpoint is read by ``ppmatting.weights.safe_pickle``, which builds numeric
arrays and plain containers and never runs anything the file names; a file that asks for more is
refused with one line. URLs are downloaded with their checksum checked where one is known
(``ppmatting.weights.download``).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from ppmatting.utils.errors import InputError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_file  # noqa: E402

SOURCES = ("mmediting", "paddleseg")
DEFAULT_CONFIGS = {("mmediting", False): "configs/dim/dim-vgg16-stage1.yml",
                   ("mmediting", True): "configs/dim/dim-vgg16.yml",
                   ("paddleseg", False): "configs/dim/dim-vgg16-paddleseg.yml (with refiner: null)",
                   ("paddleseg", True): "configs/dim/dim-vgg16-paddleseg.yml"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES,
                        help="layout of the input checkpoint")
    parser.add_argument("input", help="checkpoint to convert (.pth, .pdparams, .pkl, .npz or URL)")
    parser.add_argument("output", help="ppmatting .pdparams to write")
    parser.add_argument("--config", default=None,
                        help="check against this config's model instead of the default network")
    parser.add_argument("--allow_missing_refiner", action="store_true",
                        help="with --config: accept a checkpoint without the model's refiner")
    return parser.parse_args(argv)


def build_target(source, with_refiner, config):
    """The network the checkpoint must cover."""
    if config:
        from ppmatting.cvlibs.config import Config
        # Only the shapes matter: do not load any weights while building.
        cfg = Config(config, opts=["model.pretrained=null", "model.backbone.pretrained=null"])
        return cfg.model
    from ppmatting.models.dim import dim_vgg16, dim_vgg16_paddleseg
    if source == "mmediting":
        return dim_vgg16(refiner=with_refiner)
    return dim_vgg16_paddleseg(refiner=with_refiner)


def _print_names(title, names, limit=20):
    if not names:
        return
    print(f"  {title} ({len(names)}):")
    for name in names[:limit]:
        print(f"    {name}")
    if len(names) > limit:
        print(f"    ... and {len(names) - limit} more")


@run_cli
def main(argv=None):
    args = parse_args(argv)
    import ppmatting  # noqa: F401 - fills the registries for --config
    from ppmatting import weights

    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise InputError(f"{args.output}: output would overwrite the input")
    check_output_file(args.output, "output")
    state = weights.read_state_dict(weights.resolve_weights_path(args.input))
    renamed, unmapped, source = weights.convert_checkpoint(state, args.input, source=args.source)
    with_refiner = any(name.startswith("refiner.") for name in renamed)
    model = build_target(source, with_refiner, args.config)
    weights.check_variant(renamed, model.variant, args.input)
    shapes = weights.network_shapes(model)
    comparison = weights.compare(renamed, shapes)

    print(f"{args.input}: {len(state)} tensors in the {source} layout")
    target = args.config or DEFAULT_CONFIGS[(source, with_refiner)]
    print(f"  network: {target} ({len(shapes)} tensors"
          f"{', no refiner' if getattr(model, 'refiner', None) is None else ', with refiner'})")
    print(f"  matched: {len(comparison.matched)}")
    _print_names("unexpected, dropped", unmapped + comparison.unexpected)
    _print_names("missing", comparison.missing)
    _print_names("shape mismatches", [f"{n}: file {list(a)}, network {list(b)}"
                                      for n, a, b in comparison.mismatched])
    allow = ("refiner.",) if args.allow_missing_refiner else ()
    error = weights.coverage_error(args.input, comparison, allow)
    if error:
        raise InputError(error + "; nothing written")

    out = {name: renamed[name] for name in comparison.matched}
    weights.save_state_dict(out, args.output)
    # Read the file back: what was written must be what was converted, tensor for tensor.
    written = weights.read_state_dict(args.output)
    for name, value in out.items():
        if name not in written or not np.array_equal(written[name], value):
            raise InputError(f"{args.output}: re-read check failed for {name}")
    values = sum(int(np.prod(v.shape)) for v in out.values())
    print(f"wrote {args.output}: {len(out)} tensors, {values:,} values; use it with "
          f"--model_path (config: {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
