"""One writer of matting results, for every tool (predict, bg_replace, the demo, deploy's infer.py
and the web app).

For one photo ``name`` it writes, all or nothing (a failed write removes what this call wrote,
and each file is written atomically):

* ``<name>_alpha.png``: the matte, 8- or 16-bit gray;
* ``<name>_rgba.png`` (``save_rgba``): the estimated foreground colour with the alpha;
* one composite per :class:`Composite` (a background and a file name);
* ``compare_name`` (optional): photo | trimap | alpha | composites side by side.

The foreground colour is estimated once per photo (``fg_estimate``; else the photo's own colours)
and shared by the cut-out and every composite.
"""
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ppmatting.utils.compose import composite, cutout_rgba
from ppmatting.utils.io import to_uint16, to_uint8, write_image


def default_foreground(image01, alpha01):
    """Foreground colour estimate used for cut-outs and composites (ppmatting.utils.foreground).
    Returns float32 H x W x 3 in [0, 1]."""
    from ppmatting.utils.foreground import estimate_foreground

    fg01 = estimate_foreground(image01, alpha01)
    if isinstance(fg01, tuple):  # (fg, bg) when an implementation also returns the background
        fg01 = fg01[0]
    return np.clip(np.asarray(fg01, dtype=np.float32), 0.0, 1.0)


def alpha_to_save(alpha01, bits=8):
    """alpha01 -> uint8 (bits=8) or uint16 (bits=16) gray image."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    return to_uint16(alpha01) if bits == 16 else to_uint8(alpha01)


def write_all_or_nothing(items):
    """Write ``[(path, array), ...]`` with :func:`write_image`; when one write fails, the files
    already written by this call are removed, so a photo's outputs are complete or absent."""
    written = []
    try:
        for path, array in items:
            write_image(path, array)
            written.append(path)
    except BaseException:
        for path in written:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise
    return [path for path, _ in items]


@dataclass
class Composite:
    """One composite to write: ``background`` (``ppmatting.apps.background.Background``) and the
    file name, where ``{name}`` stands for the photo's name (``{name}_bg_red.png``)."""
    background: object
    file_name: str


@dataclass
class Saved:
    """What :meth:`ResultWriter.save` wrote: ``paths`` {kind: path} in writing order, the
    foreground colour used and the composites as arrays (for a caller that shows them)."""
    paths: dict
    fg01: Optional[np.ndarray] = None
    composites: list = field(default_factory=list)  # [(Background, float32 H x W x 3)]


@dataclass
class ResultWriter:
    save_dir: str
    bits: int = 8
    save_rgba: bool = True
    composites: list = field(default_factory=list)  # [Composite]
    bg_fit: str = "cover"
    compare_name: Optional[str] = None  # e.g. "{name}_compare.png"
    fg_estimate: bool = True
    foreground_fn: object = default_foreground

    def paths(self, name):
        """{kind: path} for photo ``name``: alpha, rgba, ``on <tag>`` per composite, compare."""
        paths = {"alpha": os.path.join(self.save_dir, f"{name}_alpha.png")}
        if self.save_rgba:
            paths["rgba"] = os.path.join(self.save_dir, f"{name}_rgba.png")
        for key, item in zip(self._composite_keys(), self.composites):
            paths[key] = os.path.join(self.save_dir, item.file_name.replace("{name}", name))
        if self.compare_name:
            paths["compare"] = os.path.join(self.save_dir, self.compare_name.replace("{name}", name))
        return paths

    def _composite_keys(self):
        """``on <tag>`` per composite; a repeated tag gets ``_2``, ``_3``, ..."""
        keys, seen = [], {}
        for item in self.composites:
            key = f"on {item.background.tag}"
            seen[key] = seen.get(key, 0) + 1
            keys.append(key if seen[key] == 1 else f"{key}_{seen[key]}")
        return keys

    def foreground(self, image01, alpha01):
        """The colour the cut-out and composites use."""
        if not self.fg_estimate:
            return np.asarray(image01, dtype=np.float32)
        return self.foreground_fn(image01, alpha01)

    def render(self, name, image01, alpha01, trimap_u8=None):
        """The arrays to write: ``([(path, array)], Saved)`` without touching the disk."""
        from ppmatting.apps.background import render_background

        paths = self.paths(name)
        items = [(paths["alpha"], alpha_to_save(alpha01, self.bits))]
        needs_fg = self.save_rgba or self.composites
        fg01 = self.foreground(image01, alpha01) if needs_fg else None
        if self.save_rgba:
            items.append((paths["rgba"], cutout_rgba(fg01, alpha01, bits=self.bits)))
        made = []
        for key, item in zip(self._composite_keys(), self.composites):
            bg01 = render_background(item.background, alpha01.shape, self.bg_fit, image01, alpha01)
            image = composite(fg01, alpha01, bg01)
            made.append((item.background, image))
            items.append((paths[key], image))
        if self.compare_name:
            from ppmatting.apps.compare import compare_picture

            panels = [("input", image01)]
            if trimap_u8 is not None:
                panels.append(("trimap", trimap_u8))
            panels.append(("alpha", alpha01))
            panels += [(f"on {background.label}", image) for background, image in made]
            items.append((paths["compare"], compare_picture(panels)))
        return items, Saved(paths=paths, fg01=fg01, composites=made)

    def save(self, name, image01, alpha01, trimap_u8=None):
        """Write photo ``name``'s results (all or nothing); returns :class:`Saved`."""
        items, saved = self.render(name, image01, alpha01, trimap_u8)
        write_all_or_nothing(items)
        return saved
