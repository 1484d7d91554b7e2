"""Reading and writing images, alphas and trimaps, with one-line errors and atomic writes.

Value-range conventions used everywhere in ppmatting:

* ``image01``: float32, H x W x 3, RGB, values in [0, 1]
* ``alpha01``: float32, H x W, values in [0, 1]
* ``trimap_u8``: uint8, H x W, values exactly {0, 128, 255}
  (0 = background, 128 = unknown, 255 = foreground)

16-bit PNGs are read at full precision (divided by 65535).

Untrusted files: before a file is decoded its header's size is read (``utils.image_header``) and
checked against :data:`MAX_IMAGE_PIXELS` and the memory the read would need, so a small file that
claims an enormous image is refused with one line instead of exhausting memory. Outputs: tools
check their output folders and files first (:func:`check_output_dir`, :func:`check_output_file`)
and every write is atomic; a write that fails names the path (:class:`OutputError`).
"""
import os
import tempfile

import cv2
import numpy as np

from ppmatting.utils.errors import InputError, OutputError
from ppmatting.utils.image_header import HeaderError, read_header
from ppmatting.utils.memory import default_budget_bytes, format_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Trimap rule for files whose values are not exactly {0, 128, 255} (JPEG noise, 0/127/255, 16-bit):
# v < 64 -> 0 (background), v >= 192 -> 255 (foreground), anything between -> 128 (unknown).
TRIMAP_BG_BELOW = 64
TRIMAP_FG_FROM = 192

# Largest image read (pixels): 2^28 = 268 MP, e.g. 16384 x 16384, above any camera's photos and
# below OpenCV's own limit (CV_IO_MAX_IMAGE_PIXELS, 2^30), whose error is a traceback.
MAX_IMAGE_PIXELS = 2 ** 28
# bytes a pixel of reading it as image01 besides the decoded samples: the float32 copy, its
# scaling and the colour conversion (read_image)
FLOAT_BYTES_PER_PIXEL = 3 * 4 * 2


def read_file_bytes(path):
    """The bytes of an input file as a uint8 array; InputError for a missing, unreadable or
    empty file or a folder."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, expected an image file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    if data.size == 0:
        raise InputError(f"{path}: file is empty")
    return data


def check_image_header(path, data, budget_bytes=None):
    """Refuse an encoded image before decoding it: unknown format or corrupt header, more than
    :data:`MAX_IMAGE_PIXELS`, or more memory than ``budget_bytes`` (default 70% of the available
    memory). Returns the :class:`~ppmatting.utils.image_header.ImageHeader`."""
    try:
        header = read_header(data)
    except HeaderError as err:
        raise InputError(f"{path}: not a readable image ({err})") from None
    size = f"{header.width}x{header.height}"
    if header.pixels > MAX_IMAGE_PIXELS:
        raise InputError(f"{path}: its {header.format} header claims {size} pixels "
                         f"({header.pixels / 1e6:.0f} MP), more than the {MAX_IMAGE_PIXELS / 1e6:.0f}"
                         f" MP ppmatting reads; downscale it first")
    need = header.decoded_bytes + header.pixels * FLOAT_BYTES_PER_PIXEL
    budget = default_budget_bytes() if budget_bytes is None else budget_bytes
    if need > budget:
        raise InputError(f"{path}: its {header.format} header claims {size} pixels, which need "
                         f"about {format_bytes(need)} to read, more than the "
                         f"{format_bytes(budget)} available; downscale it first")
    return header


def _decode(path, flags):
    path = os.fspath(path)
    data = read_file_bytes(path)
    check_image_header(path, data)
    try:
        array = cv2.imdecode(data, flags)
    except cv2.error as err:  # a header that passed but a body OpenCV cannot take
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "OpenCV error"
        raise InputError(f"{path}: not a readable image ({reason})") from None
    if array is None:
        raise InputError(f"{path}: not a readable image (corrupt or unsupported format)")
    return array


def _to_unit_float(array, path):
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype in (np.float32, np.float64):
        return np.clip(array.astype(np.float32), 0.0, 1.0)
    raise InputError(f"{path}: unsupported pixel type {array.dtype}")


def read_image(path):
    """Read a photo as ``image01`` (H x W x 3 RGB float32 in [0, 1]).

    Grayscale files are replicated to three channels; an alpha channel (RGBA) is dropped on
    purpose: the photo to be matted is the colour data, its transparency is not an input.
    """
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim == 2:
        raw = np.repeat(raw[:, :, None], 3, axis=2)
    elif raw.shape[2] == 4:
        raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
    elif raw.shape[2] == 3:
        raw = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    else:
        raise InputError(f"{path}: has {raw.shape[2]} channels, expected 1, 3 or 4")
    return np.ascontiguousarray(_to_unit_float(raw, path))


def read_rgba(path):
    """Read a foreground file that may carry its own alpha: returns (image01, alpha01 or None)."""
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim == 3 and raw.shape[2] == 4:
        rgb = cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2RGB)
        return _to_unit_float(rgb, path), _to_unit_float(raw[:, :, 3], path)
    return read_image(path), None


def read_alpha(path):
    """Read a matte as ``alpha01`` (H x W float32 in [0, 1]).

    One channel: itself. Three channels (mattes saved as RGB with equal channels): the mean.
    Four channels: the alpha channel of an RGBA cut-out.
    """
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim == 3:
        if raw.shape[2] == 4:
            raw = raw[:, :, 3]
        elif raw.shape[2] == 3:
            raw = raw.astype(np.float64).mean(axis=2).round().astype(raw.dtype)
        else:
            raw = raw[:, :, 0]
    return np.ascontiguousarray(_to_unit_float(raw, path))


def normalize_trimap(trimap):
    """Map any trimap (uint8, uint16 or float in [0,1]) to exact {0, 128, 255} by the rule above."""
    trimap = np.asarray(trimap)
    if trimap.dtype == np.uint16:
        values = trimap.astype(np.float32) / 257.0
    elif trimap.dtype in (np.float32, np.float64) and trimap.max(initial=0) <= 1.0:
        values = trimap.astype(np.float32) * 255.0
    else:
        values = trimap.astype(np.float32)
    out = np.full(values.shape, 128, dtype=np.uint8)
    out[values < TRIMAP_BG_BELOW] = 0
    out[values >= TRIMAP_FG_FROM] = 255
    return out


def read_trimap(path):
    """Read a trimap as ``trimap_u8`` (H x W uint8 with values exactly {0, 128, 255})."""
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim == 3:
        raw = raw[:, :, 3] if raw.shape[2] == 4 and raw[:, :, 3].min() < raw[:, :, 3].max() \
            else raw[:, :, 0]
    return normalize_trimap(raw)


def check_same_size(shape_a, path_a, shape_b, path_b):
    """Raise a one-line error naming both files when two arrays differ in height or width."""
    if tuple(shape_a[:2]) != tuple(shape_b[:2]):
        raise InputError(f"size mismatch: {path_a} is {shape_a[1]}x{shape_a[0]} (WxH) but "
                         f"{path_b} is {shape_b[1]}x{shape_b[0]}")


def to_uint8(array01):
    """[0, 1] float -> uint8 with rounding (how a saved PNG quantises)."""
    return np.clip(np.round(np.asarray(array01, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def to_uint16(array01):
    return np.clip(np.round(np.asarray(array01, dtype=np.float64) * 65535.0), 0, 65535).astype(np.uint16)


def check_output_dir(path, flag="--save_dir"):
    """Check that ``path`` can be an output folder, before any work: it is a folder (or can be
    made: no part of it is a file) and a file can be written in it (or in the nearest folder that
    exists, when it is still to be made). Creates nothing; raises :class:`OutputError` with one
    line naming ``flag``, the path and the problem. Returns ``path`` (``None`` or ``""``, no
    output folder, pass unchecked)."""
    if not path:
        return path
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a file, not a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise OutputError(f"{flag} {path}: cannot be made, {existing} is a file")
    try:  # a real write: permission bits do not tell root, read-only mounts or full disks
        fd, probe = tempfile.mkstemp(prefix=".ppmatting-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "" if existing == os.path.abspath(path) else f" (in {existing})"
        raise OutputError(f"{flag} {path}: cannot write files there{where}: "
                          f"{err.strerror or err}") from None
    return path


def check_output_file(path, flag="--save_path"):
    """Check that the file ``path`` can be written: it is not a folder and its folder is usable
    (:func:`check_output_dir`). Creates nothing; returns ``path``."""
    path = os.fspath(path)
    if not path or path.endswith(("/", os.sep)):
        raise OutputError(f"{flag} {path!r}: give a file name")
    if os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a folder, expected a file name")
    check_output_dir(os.path.dirname(os.path.abspath(path)), flag)
    return path


def atomic_write_bytes(path, data):
    """Write bytes to ``path`` through a temporary file in the same folder and ``os.replace``,
    so a reader (or a crash) never sees a half-written file. A failure (no such folder possible,
    no permission, disk full) raises :class:`OutputError` naming ``path``; nothing is left."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror or err})") from None
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OutputError(f"{path}: cannot write ({err.strerror or err})") from None
        raise


def write_image(path, array, jpeg_quality=95):
    """Atomically write an image. ``array`` is uint8/uint16 (H x W, H x W x 3 RGB or H x W x 4
    RGBA) or float in [0, 1] (written as 8-bit). Format follows the extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower() or ".png"
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        array = to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    params = []
    if ext in (".jpg", ".jpeg"):
        if array.ndim == 3 and array.shape[2] == 4:
            raise InputError(f"{path}: JPEG cannot hold transparency; use a .png name")
        if array.dtype == np.uint16:
            array = (array // 257).astype(np.uint8)
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, encoded = cv2.imencode(ext, array, params)
    if not ok:
        raise InputError(f"{path}: cannot encode an image with extension '{ext}'")
    atomic_write_bytes(path, encoded.tobytes())


def list_images(folder):
    """Sorted image files directly inside ``folder``."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: folder not found")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
