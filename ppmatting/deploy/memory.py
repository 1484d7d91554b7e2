"""How much memory a DIM forward pass takes, estimated before it runs, against a budget.

The estimate is of the process's peak resident memory (RSS) while it mattes one photo that it
has already read::

    peak = rss_now + max(PREPROCESS_BYTES_PER_PIXEL * H * W,      normalising and padding
                         HELD_BYTES_PER_PIXEL * H * W             arrays held while the network
                         + figure.fixed_bytes                     runs, plus one forward pass
                         + figure.bytes_per_pixel * window * batch)   over a window (the whole
                                                                  padded image, or one tile)

``rss_now`` (measured when the plan is made) holds the program, the libraries, the engine and the
photo as read.

``figure`` depends on the network variant, the engine (Paddle Inference, the dynamic graph,
ONNX Runtime) and the precision: :data:`FIGURES` holds the values measured on the project's CPU
machine by ``python benchmarks/bench_large_photo.py --calibrate`` (peak RSS of a child process,
``resource.getrusage``, at two window sizes; a straight line through them). Activations grow with
the window's area, so a linear model is what the network's shape predicts; the fit is checked
against a third size by the same command.

The budget works like the classical methods' ``max_memory_gb`` (``ppmatting/ml/methods.py``); both
take the share and the MemAvailable reader from :mod:`ppmatting.utils.memory`: by default the process may grow by 70% of the
memory the machine has available now; ``max_memory_gb`` sets the peak RSS itself.
"""
import os
from dataclasses import dataclass

from ppmatting.utils.memory import GIB, MEMORY_SHARE, available_memory_bytes, format_bytes

ENGINES = ("paddle", "dygraph", "onnxruntime")


@dataclass(frozen=True)
class EngineFigure:
    """Memory of one forward pass: ``fixed_bytes + bytes_per_pixel * pixels`` (pixels of the
    network input, summed over the batch)."""
    fixed_bytes: float
    bytes_per_pixel: float
    measured: bool = True

    def bytes_for(self, pixels):
        return float(self.fixed_bytes) + float(self.bytes_per_pixel) * float(pixels)


# (variant, engine, precision) -> figure. Measured by benchmarks/bench_large_photo.py --calibrate
# (docs/deploy.md, "Large photos", gives the run). Replace a row with what that command prints.
# Measured 2026-12-01 (Paddle 3.3.1, onnxruntime 1.32.0, 2-core Xeon with AVX512-BF16/AMX), peak
# over four runs of one shape (the dynamic graph: two; it does not grow between runs). Comments:
# the third size (1280x768), measured vs the line.
FIGURES = {
    ("mmediting", "paddle", "fp32"): EngineFigure(175e6, 1395.0),  # 1475 vs 1475 MiB
    ("mmediting", "paddle", "bf16"): EngineFigure(216e6, 1021.0),  # 1185 vs 1163 MiB
    ("mmediting", "dygraph", "fp32"): EngineFigure(254e6, 7471.0),  # 7254 vs 7246 MiB
    ("paddleseg", "paddle", "fp32"): EngineFigure(218e6, 1460.0),  # 1572 vs 1576 MiB
    ("paddleseg", "paddle", "bf16"): EngineFigure(253e6, 1223.0),  # 1390 vs 1389 MiB
    ("paddleseg", "dygraph", "fp32"): EngineFigure(203e6, 7893.0),  # 7576 vs 7593 MiB
    # ONNX Runtime's arena grows in steps: the line is an upper bound (1552 vs 1760 MiB)
    ("paddleseg", "onnxruntime", "fp32"): EngineFigure(1.4e6, 1876.0),
    # measured 2026-12-02, nothing else running (`--calibrate --engines onnxruntime`, which
    # re-measured the row above at 0.6 MB + 1877 B): 1552 vs 1800 MiB, an upper bound likewise
    ("mmediting", "onnxruntime", "fp32"): EngineFigure(0.0, 1920.0),
}
# The tool's own arrays per photo pixel, beyond the photo as read (calibrated like FIGURES):
# while normalising and padding (temporaries), and while the network runs (the normalised padded
# image, the trimap as float32, the alpha being assembled).
PREPROCESS_BYTES_PER_PIXEL = 30.0  # 2048x1536 photo, --calibrate --host_only
HELD_BYTES_PER_PIXEL = 26.0


def engine_figure(variant, engine, precision="fp32"):
    """The measured figure for this combination; for one not measured, the largest figure of the
    same engine (or of any engine), marked ``measured=False`` so messages can say so."""
    key = (variant, engine, precision)
    if key in FIGURES:
        return FIGURES[key]
    same_engine = [f for (_, e, _), f in FIGURES.items() if e == engine] or list(FIGURES.values())
    worst = max(same_engine, key=lambda f: f.bytes_per_pixel)
    return EngineFigure(worst.fixed_bytes, worst.bytes_per_pixel, measured=False)


def current_rss_bytes():
    """This process's resident memory now (Linux /proc/self/statm), else 0."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(frozen=True)
class Budget:
    """The peak RSS a run may reach, and where that number came from."""
    limit_bytes: float
    rss_bytes: float
    source: str

    @classmethod
    def from_option(cls, max_memory_gb=None):
        rss = current_rss_bytes()
        if max_memory_gb is not None:
            return cls(float(max_memory_gb) * GIB, rss, f"--max_memory_gb {max_memory_gb:g}")
        free = available_memory_bytes()
        return cls(rss + MEMORY_SHARE * free, rss,
                   f"default: {int(MEMORY_SHARE * 100)}% of the {format_bytes(free)} available "
                   f"+ the {format_bytes(rss)} this process holds; set --max_memory_gb")

    def describe(self):
        return f"{format_bytes(self.limit_bytes)} ({self.source})"


def estimate_peak(figure, image_pixels, window_pixels, batch=1, rss_bytes=0.0):
    """Estimated peak RSS (bytes) of matting a photo of ``image_pixels`` pixels (already read)
    with forward passes over windows of ``window_pixels`` pixels, ``batch`` windows at a time."""
    image_pixels = float(image_pixels)
    return float(rss_bytes) + max(
        PREPROCESS_BYTES_PER_PIXEL * image_pixels,
        HELD_BYTES_PER_PIXEL * image_pixels + figure.bytes_for(float(window_pixels) * int(batch)))


def largest_window_pixels(figure, image_pixels, budget, batch=1):
    """The largest window (pixels) whose estimate fits ``budget`` (a :class:`Budget`); negative
    when even the photo's own arrays do not fit."""
    room = budget.limit_bytes - budget.rss_bytes - HELD_BYTES_PER_PIXEL * float(image_pixels)
    if budget.limit_bytes - budget.rss_bytes < PREPROCESS_BYTES_PER_PIXEL * float(image_pixels):
        return -1.0
    return (room - figure.fixed_bytes) / (figure.bytes_per_pixel * int(batch))
