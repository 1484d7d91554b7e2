"""Score one prediction with a chosen set of metrics."""
from ppmatting.metrics.conn import Conn
from ppmatting.metrics.grad import Grad
from ppmatting.metrics.mse import MSE
from ppmatting.metrics.pair import prepare_pair
from ppmatting.metrics.sad import SAD
from ppmatting.metrics.trimap import DEFAULT_TRIMAP_RADIUS
from ppmatting.utils.errors import ConfigError

# The benchmark's four metrics with their standard parameters (Grad sigma 1.4, Conn step 0.1).
METRIC_CLASSES = {"sad": SAD, "mse": MSE, "grad": Grad, "conn": Conn}
METRIC_NAMES = tuple(METRIC_CLASSES)


def build_metrics(names=METRIC_NAMES):
    """``names`` (any of sad, mse, grad, conn; case-insensitive) -> {name: metric object}, in the
    canonical order sad, mse, grad, conn. Unknown names raise a one-line ``ConfigError``."""
    wanted = []
    for name in names:
        key = str(name).lower()
        if key not in METRIC_CLASSES:
            raise ConfigError(f"unknown metric '{name}' (choose from {', '.join(METRIC_NAMES)})")
        wanted.append(key)
    return {key: METRIC_CLASSES[key]() for key in METRIC_NAMES if key in wanted}


def score_pair(pair, metrics):
    """``metrics``: {name: metric} from :func:`build_metrics`. Returns {name: float}; every metric
    is 0.0 when the pair has no unknown pixel."""
    if pair.empty_unknown:
        return {name: 0.0 for name in metrics}
    return {name: metric(pair) for name, metric in metrics.items()}


def compute_metrics(pred, gt, trimap=None, metrics=METRIC_NAMES,
                    trimap_radius=DEFAULT_TRIMAP_RADIUS):
    """One-call scoring of arrays: ``pred`` (H x W float [0, 1], uint8 or uint16), ``gt`` (H x W
    uint8, uint16 or float [0, 1]), ``trimap`` (H x W uint8 {0, 128, 255}, or None to generate one
    from ``gt``). Returns {metric name: value}. See ``prepare_pair`` for the pre-processing."""
    pair = prepare_pair(pred, gt, trimap, trimap_radius=trimap_radius)
    return score_pair(pair, build_metrics(metrics))
