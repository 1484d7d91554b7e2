"""Synthetic foregrounds with exact alpha and genuinely hard edges, for the bundled demo data and
for tests: fur and hair strands, semi-transparent veils, motion blur and smoke.

Everything is rendered at ``supersample`` times the output size and reduced with area averaging,
so thin strands get fractional alpha exactly as a camera's pixels would integrate them. The alpha
returned is the exact coverage used to composite: image = alpha*fg + (1-alpha)*bg holds by
construction (composite with ``ppmatting.utils.compose.composite``).
"""
import cv2
import numpy as np

KINDS = ("furry", "hair", "veil", "motion", "smoke")


def _texture(rng, hw, base_rgb, variation=0.25, scale=16):
    """Smooth coloured texture in [0,1]: a base colour times low-frequency noise."""
    height, width = hw
    small = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
    noise = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    rgb = np.asarray(base_rgb, np.float32)[None, None] * (1 - variation + 2 * variation * noise)
    return np.clip(rgb, 0, 1)


def _strands(rng, canvas, origins, directions, length_range, thickness, opacity_range, curl):
    """Draw anti-aliased quadratic-Bezier strands on a float canvas (max-combined coverage)."""
    for (y, x), (dy, dx) in zip(origins, directions):
        length = rng.uniform(*length_range)
        bend = rng.normal(0, curl, size=2)
        ctrl = np.array([x + dx * length * 0.5 + bend[0] * length, y + dy * length * 0.5 + bend[1] * length])
        end = np.array([x + dx * length + bend[0] * length * 0.6, y + dy * length + bend[1] * length * 0.6])
        t = np.linspace(0, 1, 24)[:, None]
        start = np.array([x, y])
        pts = (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t ** 2 * end
        layer = np.zeros_like(canvas)
        cv2.polylines(layer, [np.round(pts * 16).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA, 4)
        np.maximum(canvas, layer * rng.uniform(*opacity_range), out=canvas)


def _boundary_points(mask, count, rng):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate([c[:, 0, :] for c in contours], axis=0)  # (x, y)
    picks = points[rng.integers(len(points), size=count)]
    moments = cv2.moments(mask.astype(np.uint8))
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    direction = picks - np.array([cx, cy])
    direction = direction / (np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6)
    return picks[:, ::-1].astype(np.float64), direction[:, ::-1]


def make_foreground(kind, size_hw, rng, supersample=3):
    """One foreground object.

    Args:
        kind: one of :data:`KINDS`.
        size_hw: (height, width) of the output.
        rng: ``numpy.random.Generator``.
    Returns:
        fg01: float32 H x W x 3 in [0, 1] (defined everywhere, as real foreground layers are),
        alpha01: float32 H x W in [0, 1].
    """
    height, width = size_hw
    big = (height * supersample, width * supersample)
    hue_rgb = rng.uniform(0.25, 0.95, size=3)
    alpha = np.zeros(big, np.float32)
    body = np.zeros(big, np.uint8)
    centre = (int(big[1] * rng.uniform(0.4, 0.6)), int(big[0] * rng.uniform(0.45, 0.6)))
    axes = (int(big[1] * rng.uniform(0.16, 0.26)), int(big[0] * rng.uniform(0.18, 0.3)))
    if kind in ("furry", "hair", "motion"):
        cv2.ellipse(body, centre, axes, rng.uniform(0, 180), 0, 360, 1, -1, cv2.LINE_8)
        alpha = body.astype(np.float32)
    if kind == "furry":
        origins, dirs = _boundary_points(body, 1400, rng)
        _strands(rng, alpha, origins, dirs, (0.04 * big[0], 0.14 * big[0]), supersample,
                 (0.6, 1.0), 0.25)
    elif kind == "hair":
        # long flowing strands from the top half of the body, drifting sideways
        origins, dirs = _boundary_points(body, 900, rng)
        top = origins[:, 0] < centre[1]
        origins, dirs = origins[top], dirs[top] * 0.4 + np.array([0.9, rng.uniform(-0.4, 0.4)])
        _strands(rng, alpha, origins, dirs, (0.1 * big[0], 0.35 * big[0]), max(1, supersample - 1),
                 (0.5, 1.0), 0.35)
    elif kind == "veil":
        cv2.ellipse(body, centre, axes, rng.uniform(0, 180), 0, 360, 1, -1, cv2.LINE_8)
        gradient = np.linspace(rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.85), big[1], dtype=np.float32)[None]
        veil = body * gradient
        core = np.zeros(big, np.uint8)
        cv2.circle(core, centre, int(min(axes) * 0.45), 1, -1)
        alpha = np.maximum(cv2.GaussianBlur(veil, (0, 0), supersample * 1.5), core.astype(np.float32))
    elif kind == "motion":
        length = int(big[1] * rng.uniform(0.06, 0.12)) | 1
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        kernel /= kernel.sum()
        alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    elif kind == "smoke":
        noise = np.zeros(big, np.float32)
        for octave in range(4):
            cells = 4 * 2 ** octave
            layer = cv2.resize(rng.random((cells, cells)).astype(np.float32), (big[1], big[0]),
                               interpolation=cv2.INTER_CUBIC)
            noise += layer / 2 ** octave
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
        plume = np.zeros(big, np.float32)
        cv2.ellipse(plume, centre, axes, 0, 0, 360, 1.0, -1)
        plume = cv2.GaussianBlur(plume, (0, 0), big[0] * 0.08)
        alpha = np.clip(plume * (0.3 + noise) * 1.4, 0, 1)
        alpha[alpha > 0.97] = 1.0
    fg = _texture(rng, big, hue_rgb)
    strand_rgb = np.clip(hue_rgb * rng.uniform(0.7, 1.3), 0, 1)
    strand_mix = np.clip(alpha - body.astype(np.float32), 0, 1)[:, :, None]
    fg = fg * (1 - strand_mix) + strand_rgb[None, None] * strand_mix
    alpha = np.clip(alpha, 0, 1)
    small_alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
    # premultiplied reduction keeps colours of thin strands right where coverage is partial
    premult = cv2.resize(fg * alpha[:, :, None], (width, height), interpolation=cv2.INTER_AREA)
    plain = cv2.resize(fg, (width, height), interpolation=cv2.INTER_AREA)
    safe = np.maximum(small_alpha, 1e-4)[:, :, None]
    fg_small = np.where(small_alpha[:, :, None] > 1e-3, premult / safe, plain)
    alpha8 = np.round(np.clip(small_alpha, 0, 1) * 255) / 255.0  # exact as stored in an 8-bit PNG
    return np.clip(fg_small, 0, 1).astype(np.float32), alpha8.astype(np.float32)
