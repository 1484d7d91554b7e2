"""DIM weights: reading files (``files``; pickles go through ``safe_pickle`` and PyTorch
checkpoints through ``torch_files``, and neither runs code from the file), downloading with size
caps and checksums (``download``), the checkpoint layouts and their name maps (``layouts``), loading
into a network (``load``) and the VGG16 ImageNet initialisation of the encoder (``vgg_imagenet``).

Nothing here imports ``ppmatting.models``: the networks import this package, not the reverse.
"""
from ppmatting.weights.download import resolve_weights_path  # noqa: F401
from ppmatting.weights.files import (read_paddle_file, read_pickle_file,  # noqa: F401
                                     read_state_dict, read_weights_object, save_state_dict)
from ppmatting.weights.layouts import (LAYOUTS, LAYOUT_TITLES, check_variant,  # noqa: F401
                                       convert_checkpoint, detect_layout, to_ppmatting_names,
                                       variant_of)
from ppmatting.weights.load import (Comparison, LoadReport, compare, coverage_error,  # noqa: F401
                                    load_weights, network_shapes)
from ppmatting.weights.vgg_imagenet import load_vgg16_imagenet  # noqa: F401
