"""Conn: connectivity error over the unknown region (DIM's ``compute_connectivity_error.m``)."""
import cv2
import numpy as np


def threshold_levels(codes, max_code, steps):
    """Number of thresholds each pixel passes: the largest i in 0..steps with
    code / max_code >= i / steps, decided exactly in integers (steps * code >= max_code * i).
    ``codes``: uint8 (max_code 255) or uint16 array. Returns uint8 of the same shape."""
    lut = ((np.arange(max_code + 1, dtype=np.int64) * steps) // max_code).astype(np.uint8)
    if codes.dtype == np.uint8 and max_code == 255:
        return cv2.LUT(codes, lut)      # an 8-bit table lookup, much faster than fancy indexing
    return lut[codes]


def _first_pixel_column_major(labels, label):
    """(column, row) of the first pixel of ``label`` in column-major scan order."""
    column = int(np.argmax((labels == label).any(axis=0)))
    return column, int(np.argmax(labels[:, column] == label))


def largest_component(labels, count, candidate=0, foreground=None):
    """Label (1..count-1) of the largest 4-connected component in ``labels``, or 0 if none.

    ``candidate``: a label likely to be the largest (e.g. the one holding most of the pixels we
    care about). When it covers more than half of the foreground (``foreground`` = number of
    labelled pixels), no other component can be as large, and the full area count is skipped.

    Ties go to the component whose first pixel in column-major order comes first: MATLAB's
    ``bwconncomp`` numbers components in column-major scan order and ``max`` returns the first
    maximum. (Row-major ports such as mmediting's can pick another one on exact ties.)
    """
    if count <= 1:
        return 0
    if candidate > 0 and foreground is not None:
        if 2 * int(np.count_nonzero(labels == candidate)) > foreground:
            return int(candidate)
    areas = np.bincount(labels.ravel(), minlength=count)[1:]
    tied = np.flatnonzero(areas == areas.max()) + 1
    if tied.size == 1:
        return int(tied[0])
    keys = [(_first_pixel_column_major(labels, int(label)), int(label)) for label in tied]
    return min(keys)[1]


def _likely_label(labels_flat, sample):
    """Most frequent non-zero label at the flat positions ``sample``; 0 if all are zero."""
    found = labels_flat[sample]
    found = found[found > 0]
    if found.size == 0:
        return 0
    return int(np.argmax(np.bincount(found)))



class Conn:
    """Conn = sum over U of |phi(g) - phi(p)|, divided by 1000.

    Thresholds t_i = i * step, i = 0..n (step 0.1: n = 10). For i = 1..n, take C_i, the largest
    4-connected component of {g >= t_i and p >= t_i} over the whole image. Each pixel gets
    l = t_(i-1) for the first i whose C_i does not contain it, or l = 1 if every C_i does.
    For an alpha a (p or g): d = a - l, phi(a) = 1 - d * [d >= 0.15]. U = pixels with
    trimap == 128; p = prediction forced to the trimap, 8-bit; g = ground truth.
    ``a >= t_i`` is decided exactly on the integer codes (n * code >= max_code * i), so v = 153
    counts at 0.6. Empty U gives 0.

    Speed: one ``cv2.connectedComponents`` per threshold on the bounding box of the first
    threshold's set (the background, where the forced prediction is 0, is cut away once); the
    component areas are counted only when the component holding most of the still-unassigned
    unknown pixels does not cover more than half of the set (if it does, it must be the
    largest); the assignment is three OpenCV whole-crop operations per threshold (no per-pixel
    index lists), and labelling stops once every unknown pixel is assigned.
    """

    name = "conn"

    def __init__(self, step=0.1):
        steps = int(round(1.0 / step))
        if steps < 1 or abs(steps * step - 1.0) > 1e-9:
            raise ValueError(f"Conn step must be 1/n for an integer n, got {step}")
        self.step = float(step)
        self.steps = steps
        self._tables = {}

    def exit_level_map(self, pair):
        """H x W uint8 map, meaningful on the unknown pixels: the first i whose largest
        component C_i does not contain the pixel, or steps + 1 when every C_i does; the pixel's
        l is (map - 1) / steps.

        Computed as 1 + the number of thresholds i for which the pixel is in C_1, ..., C_i (it
        "survives" while it stays in every largest component so far)."""
        steps = self.steps
        level = np.minimum(threshold_levels(pair.pred_u8, 255, steps),
                           threshold_levels(pair.gt_code, pair.gt_max, steps))
        exit_map = np.ones(pair.shape, dtype=np.uint8)   # outside every C_i: leaves at i = 1
        x, y, w, h = cv2.boundingRect(cv2.threshold(level, 0, 1, cv2.THRESH_BINARY)[1])
        if w == 0 or h == 0:
            return exit_map
        crop = (slice(y, y + h), slice(x, x + w))
        level = np.ascontiguousarray(level[crop])
        # 255 where an unknown pixel is still inside every largest component so far, else 0.
        alive = pair.unknown[crop].view(np.uint8) * np.uint8(255)
        survived = np.zeros((h, w), dtype=np.uint8)
        # A few thousand unknown pixels spread over the crop, to guess the label of the component
        # the surviving pixels sit in (only a guess: largest_component checks it).
        unknown_flat = np.flatnonzero(alive)
        sample = unknown_flat[::max(1, unknown_flat.size // 4096)]
        for i in range(1, steps + 1):
            if cv2.countNonZero(alive) == 0:
                break
            binary = cv2.threshold(level, i - 1, 1, cv2.THRESH_BINARY)[1]     # level >= i
            count, labels = cv2.connectedComponents(binary, connectivity=4, ltype=cv2.CV_32S)
            labels_flat = labels.ravel()
            alive_sample = sample[alive.ravel()[sample] > 0]
            keep = largest_component(labels, count, _likely_label(labels_flat, alive_sample),
                                     foreground=cv2.countNonZero(binary))
            if keep == 0:
                break
            cv2.bitwise_and(alive, cv2.compare(labels, keep, cv2.CMP_EQ), dst=alive)
            cv2.add(survived, 1, dst=survived, mask=alive)
        exit_map[crop] = survived + 1
        return exit_map

    def phi_table(self, max_code):
        """phi(code / max_code) for every exit level k = 1..steps+1 (l = (k - 1) / steps) and
        every code: float64 (steps + 1) x (max_code + 1). phi = 1 - d * [d >= 0.15], d = a - l."""
        key = ("phi", max_code)
        if key not in self._tables:
            alpha = np.arange(max_code + 1, dtype=np.float64) / float(max_code)
            l_values = (np.arange(1, self.steps + 2, dtype=np.float64) - 1.0) / self.steps
            d = alpha[None, :] - l_values[:, None]
            self._tables[key] = 1.0 - d * (d >= 0.15)
        return self._tables[key]

    def _phi_difference_u8(self):
        """|phi(g) - phi(p)| for 8-bit g and p, flat over (k, g, p): one lookup per pixel."""
        if "u8" not in self._tables:
            phi = self.phi_table(255)
            self._tables["u8"] = np.abs(phi[:, :, None] - phi[:, None, :]).ravel()
        return self._tables["u8"]

    def __call__(self, pair):
        if pair.empty_unknown:
            return 0.0
        idx = pair.unknown_index
        # Each unknown pixel's term depends only on (exit level, gt code, pred code): look the
        # per-pixel values up in tables computed once with the formula, instead of recomputing
        # it over every pixel of every image.
        level = self.exit_level_map(pair).ravel()[idx].astype(np.intp) - 1
        pred = pair.pred_u8.ravel()[idx]
        gt = pair.gt_code.ravel()[idx]
        if pair.gt_max == 255:
            level *= 256
            level += gt
            level *= 256
            level += pred
            return float(self._phi_difference_u8()[level].sum()) / 1000.0
        phi_gt = self.phi_table(pair.gt_max).ravel()[level * (pair.gt_max + 1) + gt]
        phi_pred = self.phi_table(255).ravel()[level * 256 + pred]
        return float(np.abs(phi_gt - phi_pred).sum()) / 1000.0
