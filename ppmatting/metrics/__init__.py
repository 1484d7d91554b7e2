"""Matting metrics as the benchmark defines them: SAD, MSE, Grad and Conn over trimap == 128.

Typical use::

    from ppmatting.metrics import compute_metrics
    scores = compute_metrics(pred_alpha01, gt_alpha01, trimap_u8)   # {'sad': ..., 'mse': ...}

or, to score many metrics on one prepared pair::

    pair = prepare_pair(pred, gt, trimap)
    scores = score_pair(pair, build_metrics(["sad", "conn"]))

Before scoring, the prediction is forced to the trimap in known regions and quantised to 8 bits
(see ``ppmatting.metrics.pair``). ``ppmatting.metrics.reference`` holds plain, slow
implementations of the same definitions used by the tests and ``benchmarks/bench_metrics.py``.
"""
from ppmatting.metrics.conn import Conn
from ppmatting.metrics.grad import Grad, gaussian_derivative_factors, gaussian_halfsize
from ppmatting.metrics.mse import MSE
from ppmatting.metrics.pair import (ScoringPair, ground_truth_to_code, prediction_to_u8,
                                    prepare_pair)
from ppmatting.metrics.sad import SAD
from ppmatting.metrics.scoring import (METRIC_CLASSES, METRIC_NAMES, build_metrics,
                                       compute_metrics, score_pair)
from ppmatting.metrics.trimap import (DEFAULT_TRIMAP_RADIUS, clean_trimap, generated_trimap,
                                      trimap_rule_text)

__all__ = [
    "SAD", "MSE", "Grad", "Conn",
    "ScoringPair", "prepare_pair", "prediction_to_u8", "ground_truth_to_code",
    "METRIC_CLASSES", "METRIC_NAMES", "build_metrics", "score_pair", "compute_metrics",
    "DEFAULT_TRIMAP_RADIUS", "generated_trimap", "clean_trimap", "trimap_rule_text",
    "gaussian_halfsize", "gaussian_derivative_factors",
]
