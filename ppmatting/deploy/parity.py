"""Is an exported graph (Paddle Inference, ONNX Runtime) the same network as the dynamic graph?

A max-difference test is the wrong criterion for DIM. Max-pooling picks one element per 2x2
window; where two values of a window differ by a float rounding step or two, oneDNN (or another
framework) may pick the other one, and the unpooling and the 5x5 convolutions after it spread that
flip over a patch of pixels, while every other pixel agrees to 1e-5. A real difference (other
weights, another normalisation or padding, a wrong operator) moves most pixels, or all pixels a
little. So the criterion is a *share* of pixels that must agree within ``within`` (1/255: the same
8-bit PNG) plus a bound on the *mean* difference, and optionally on the maximum:

    passes  <=>  share(|a - b| <= within) >= min_share  and  mean |a - b| <= max_mean
                 and  max |a - b| <= max_diff

Defaults, from ``python benchmarks/bench_large_photo.py --parity`` (the paper's DIM with
trained-like weights, exported vs dynamic graph, 16 inputs of 64-320 px; docs/deploy.md section 7):
flips moved up to 2.9% of the pixels (at 320 px), by up to 0.38, with a mean difference up to
5e-4. So: 95% of pixels within 1/255, mean at most 2e-3 (about 0.5/255: a shift of 1/255 on every
pixel fails), and no bound on the maximum by default (``max_diff`` 1; NaN or inf still fails).
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_WITHIN = 1.0 / 255.0
DEFAULT_MIN_SHARE = 0.95
DEFAULT_MAX_MEAN = 2e-3
DEFAULT_MAX_DIFF = 1.0


@dataclass
class Parity:
    """How two alpha mattes of the same inputs compare."""
    pixels: int
    share_within: float  # share of pixels with |a - b| <= within
    max_diff: float
    mean_diff: float
    within: float
    min_share: float
    max_allowed: float
    max_mean: float = DEFAULT_MAX_MEAN

    @property
    def ok(self):
        return (self.share_within >= self.min_share and self.mean_diff <= self.max_mean
                and self.max_diff <= self.max_allowed)

    def describe(self):
        """One line: ``99.98% of 65536 pixels within 1/255 (need 95.00%), mean |dA| 4e-06
        (allowed 0.002), max 0.012 (allowed 1)``."""
        return (f"{self.share_within:.4%} of {self.pixels} pixels within {self.within * 255:.3g}/255 "
                f"(need {self.min_share:.2%}), mean |dA| {self.mean_diff:.2g} (allowed "
                f"{self.max_mean:g}), max {self.max_diff:.3g} (allowed {self.max_allowed:g})")

    def as_dict(self):
        return {"pixels": self.pixels, "share_within": self.share_within,
                "max_diff": self.max_diff, "mean_diff": self.mean_diff, "within": self.within,
                "min_share": self.min_share, "max_mean": self.max_mean,
                "max_allowed": self.max_allowed, "ok": self.ok}


def compare_alphas(expected, got, mask=None, within=DEFAULT_WITHIN, min_share=DEFAULT_MIN_SHARE,
                   max_diff=DEFAULT_MAX_DIFF, max_mean=DEFAULT_MAX_MEAN):
    """Compare two alpha arrays of the same shape (any rank, values in [0, 1]).

    ``mask`` (same shape, bool) restricts the comparison, e.g. to the trimap's unknown pixels;
    ``None`` compares every pixel. Raises ``ValueError`` for different shapes or an empty mask.
    """
    expected = np.asarray(expected, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if expected.shape != got.shape:
        raise ValueError(f"alpha shapes differ: {expected.shape} and {got.shape}")
    diff = np.abs(expected - got)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), diff.shape)
        diff = diff[mask]
    if diff.size == 0:
        raise ValueError("nothing to compare (empty alpha or empty mask)")
    diff = np.where(np.isfinite(diff), diff, np.inf)
    return Parity(pixels=int(diff.size), share_within=float((diff <= within + 1e-12).mean()),
                  max_diff=float(diff.max()), mean_diff=float(np.mean(np.minimum(diff, 1.0))),
                  within=float(within), min_share=float(min_share), max_allowed=float(max_diff),
                  max_mean=float(max_mean))
