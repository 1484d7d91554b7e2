"""The size an image file claims, read from its header before anything is decoded.

A PNG of a few hundred bytes can claim 60000 x 60000 pixels; decoding it would ask for 10 GB (or
stop inside OpenCV with a traceback). :func:`read_header` reads width, height, channels and bytes
per sample from the header of the formats ppmatting reads (``utils.io.IMAGE_EXTENSIONS``), so the
caller can refuse the file with one line first. The parsers are small and strict: a file whose
signature names a format but whose header is cut short or inconsistent is refused; a file of
any other format is refused too (ppmatting never hands OpenCV a format it has not checked).

Layouts, from the format specifications: PNG (ISO/IEC 15948, IHDR chunk), JPEG (ITU-T T.81,
start-of-frame segments), BMP (Microsoft's BITMAPINFOHEADER / BITMAPCOREHEADER), TIFF (TIFF 6.0
image file directory; BigTIFF's 8-byte variant), WebP (RIFF container with a VP8, VP8L or VP8X
chunk, Google's WebP container and bitstream specifications).
"""
import struct
from dataclasses import dataclass


class HeaderError(ValueError):
    """The header is not one of the formats read here, or is cut short or inconsistent."""


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    channels: int           # as OpenCV decodes it with IMREAD_UNCHANGED (at most 4)
    bytes_per_sample: int   # 1 or 2

    @property
    def pixels(self):
        return self.width * self.height

    @property
    def decoded_bytes(self):
        return self.pixels * self.channels * self.bytes_per_sample


def _unpack(fmt, data, offset, what):
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise HeaderError(f"{what} header ends before its image size")
    return struct.unpack_from(fmt, data, offset)


def _png(data):
    # signature (8), then the IHDR chunk: length 13, "IHDR", width, height, bit depth, colour type
    length, kind, width, height, depth, colour = _unpack(">I4sIIBB", data, 8, "PNG")
    if kind != b"IHDR" or length != 13:
        raise HeaderError("PNG file does not start with its IHDR chunk")
    # palette images with a transparency chunk decode to 4 channels: budget for them
    channels = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        raise HeaderError(f"PNG colour type {colour} / bit depth {depth} is not valid")
    return ImageHeader("PNG", width, height, channels, 2 if depth == 16 else 1)


# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic)
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE_MARKERS = set(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM carry no length


def _jpeg(data):
    offset = 2  # after SOI (FF D8)
    while True:
        (byte,) = _unpack("B", data, offset, "JPEG")
        if byte != 0xFF:
            raise HeaderError("JPEG header is corrupt (a segment does not start with 0xFF)")
        while True:  # any number of 0xFF fill bytes may precede a marker
            offset += 1
            (marker,) = _unpack("B", data, offset, "JPEG")
            if marker != 0xFF:
                break
        offset += 1
        if marker in _STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            raise HeaderError("JPEG file has no frame header before its image data")
        (length,) = _unpack(">H", data, offset, "JPEG")
        if length < 2:
            raise HeaderError("JPEG header is corrupt (a segment length below 2)")
        if marker in _SOF_MARKERS:
            precision, height, width, components = _unpack(">BHHB", data, offset + 2, "JPEG")
            if height == 0:  # the height comes later (a DNL segment); OpenCV's libjpeg refuses it
                raise HeaderError("JPEG frame header gives no height")
            if components not in (1, 3, 4):
                raise HeaderError(f"JPEG frame has {components} components")
            return ImageHeader("JPEG", width, height, 1 if components == 1 else 3,
                               2 if precision > 8 else 1)
        offset += length


def _bmp(data):
    (header_size,) = _unpack("<I", data, 14, "BMP")
    if header_size == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height, _, bits = _unpack("<HHHH", data, 18, "BMP")
    elif header_size >= 40:  # BITMAPINFOHEADER and its successors: signed 32-bit sizes
        width, height, _, bits = _unpack("<iiHH", data, 18, "BMP")
        height = abs(height)  # negative = rows stored top-down
    else:
        raise HeaderError(f"BMP header size {header_size} is not valid")
    if width <= 0 or bits not in (1, 2, 4, 8, 16, 24, 32):
        raise HeaderError(f"BMP header gives width {width} and {bits} bits a pixel")
    return ImageHeader("BMP", width, height, 4 if bits == 32 else 3, 1)


# TIFF field types that can hold an image size: SHORT (3), LONG (4), LONG8 (16, BigTIFF)
_TIFF_INTEGER_TYPES = {3: "H", 4: "I", 16: "Q"}
_TIFF_FIELDS = {256: "width", 257: "height", 258: "bits", 277: "samples"}


def _tiff(data):
    order = "<" if bytes(data[:2]) == b"II" else ">"
    (version,) = _unpack(order + "H", data, 2, "TIFF")
    if version == 42:
        (ifd,) = _unpack(order + "I", data, 4, "TIFF")
        count_fmt, entry_fmt, entry_size, value_at, offset_fmt = "H", "HHI", 12, 8, "I"
    elif version == 43:  # BigTIFF: 8-byte counts and offsets
        (ifd,) = _unpack(order + "Q", data, 8, "TIFF")
        count_fmt, entry_fmt, entry_size, value_at, offset_fmt = "Q", "HHQ", 20, 12, "Q"
    else:
        raise HeaderError(f"TIFF version {version} is not 42 or 43")
    (n_entries,) = _unpack(order + count_fmt, data, ifd, "TIFF")
    start = ifd + struct.calcsize(order + count_fmt)
    if start + n_entries * entry_size > len(data):
        raise HeaderError("TIFF header ends before its image size")
    capacity = struct.calcsize(offset_fmt)
    fields = {}
    for index in range(n_entries):
        at = start + index * entry_size
        tag, kind, count = _unpack(order + entry_fmt, data, at, "TIFF")
        if tag in _TIFF_FIELDS and kind in _TIFF_INTEGER_TYPES and count >= 1:
            value_fmt = order + _TIFF_INTEGER_TYPES[kind]
            where = at + value_at
            if count * struct.calcsize(value_fmt) > capacity:  # the values are elsewhere
                (where,) = _unpack(order + offset_fmt, data, where, "TIFF")
            (fields[_TIFF_FIELDS[tag]],) = _unpack(value_fmt, data, where, "TIFF")
    if "width" not in fields or "height" not in fields:
        raise HeaderError("TIFF header gives no image width or length")
    channels = min(max(fields.get("samples", 1), 1), 4)
    return ImageHeader("TIFF", fields["width"], fields["height"], channels,
                       2 if fields.get("bits", 8) > 8 else 1)


def _webp(data):
    (chunk,) = _unpack("4s", data, 12, "WebP")
    if chunk == b"VP8 ":  # lossy: frame tag (3), start code 9D 01 2A, 14-bit sizes
        start, width, height = _unpack("<3sHH", data, 23, "WebP")
        if start != b"\x9d\x01\x2a":
            raise HeaderError("WebP VP8 frame has no start code")
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF, 3, 1)
    if chunk == b"VP8L":  # lossless: signature 0x2F, then 14-bit width-1 and height-1
        signature, bits = _unpack("<BI", data, 20, "WebP")
        if signature != 0x2F:
            raise HeaderError("WebP VP8L stream has no signature")
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4, 1)
    if chunk == b"VP8X":  # extended: flags, 3 reserved bytes, 24-bit canvas width-1, height-1
        flags, _, w0, w1, w2, h0, h1, h2 = _unpack("<B3s6B", data, 20, "WebP")
        width = (w0 | w1 << 8 | w2 << 16) + 1
        height = (h0 | h1 << 8 | h2 << 16) + 1
        return ImageHeader("WebP", width, height, 4 if flags & 0x10 else 3, 1)
    raise HeaderError(f"WebP chunk {chunk!r} is not VP8, VP8L or VP8X")


def read_header(data):
    """Parse the header of an encoded image (``bytes`` or a uint8 array).

    Returns an :class:`ImageHeader`. Raises :class:`HeaderError` (a ``ValueError``) with a short
    reason when the data is not PNG, JPEG, BMP, TIFF or WebP, or its header is cut short or
    inconsistent (zero width or height included).
    """
    data = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        header = _png(data)
    elif head.startswith(b"\xff\xd8"):
        header = _jpeg(data)
    elif head.startswith(b"BM"):
        header = _bmp(data)
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        header = _tiff(data)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        header = _webp(data)
    else:
        raise HeaderError("not a PNG, JPEG, BMP, TIFF or WebP file")
    if header.width <= 0 or header.height <= 0:
        raise HeaderError(f"{header.format} header gives a size of "
                          f"{header.width}x{header.height}")
    return header
