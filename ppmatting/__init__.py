"""ppmatting: image matting with PaddlePaddle (DIM-VGG16 and classical matting in one model zoo).

Importing the package fills every component registry, whatever the working directory. It does not
import pymatting (whose numba functions compile on first use), so ``import ppmatting`` stays fast.
"""
__version__ = "0.1.0"

import warnings

# Paddle's C++-extension helper warns about a missing ccache at import; ppmatting compiles nothing.
warnings.filterwarnings("ignore", message="No ccache found")

from ppmatting import cvlibs, utils  # noqa: F401
from ppmatting import datasets, transforms, models, losses, metrics  # noqa: F401
from ppmatting import ml  # noqa: F401  (classical matting)
