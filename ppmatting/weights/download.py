"""Weights given as an http(s) URL: downloaded once, size-capped, checksum-verified, cached by URL.

* Cache: ``$PPMATTING_CACHE`` or ``$XDG_CACHE_HOME/ppmatting/weights`` (default
  ``~/.cache/ppmatting/weights``), one folder per URL (the first 32 hex digits of the SHA-256 of
  the URL without its fragment) holding the file under its own name, so two URLs that end in the
  same file name never share a file.
* Writing: the body streams into a temporary file in that folder, which is flushed, verified and
  only then renamed to its final name; a failed, refused or interrupted download leaves nothing.
* Size: at most ``$PPMATTING_MAX_DOWNLOAD_BYTES`` bytes (default 2 GiB), checked against the
  ``Content-Length`` header before the body is read and again while it streams (a server may send
  more than it declared, or declare nothing).
* Nothing is ever unpacked: a gzip/bz2/xz/7z/tar file served where weights were asked for is
  refused (and deleted).
* Checksums, in this order:
  1. pinned in the URL's fragment, which is never sent to the server (pip's convention):
     ``https://host/model.pdparams#sha256=<64 hex>`` or ``#md5=<32 hex>``;
  2. known: Paddle's published MD5s of its VGG16/VGG19 ImageNet weights (``model_urls`` in
     ``paddle/vision/models/vgg.py``, Paddle 3.3);
  3. files on download.openmmlab.com and download.pytorch.org follow torch.hub's naming convention
     ``name-<first 8 or more hex digits of the SHA-256>.ext`` (mmediting's DIM checkpoints, e.g.
     ``...-979a420f.pth``; torchvision's ``vgg16-397923af.pth``): those digits are checked.
  A mismatch is refused with one line and the file deleted. Any other URL is downloaded without a
  check and its SHA-256 is logged (WARNING) with the line to pin it.
* Only http and https, also for redirects.
"""
import hashlib
import http.client
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from ppmatting.utils.errors import InputError

logger = logging.getLogger("ppmatting.weights")

DEFAULT_MAX_BYTES = 2 << 30
CHUNK = 1 << 20
TIMEOUT_S = 60
# Paddle's published MD5s (paddle/vision/models/vgg.py, model_urls)
KNOWN_MD5 = {
    "https://paddle-hapi.bj.bcebos.com/models/vgg16.pdparams": "89bbffc0f87d260be9b8cdc169c991c4",
    "https://paddle-hapi.bj.bcebos.com/models/vgg19.pdparams": "23b18bb13d8894f60f54e642be79a0dd",
}
HUB_HOSTS = ("download.openmmlab.com", "download.pytorch.org")
HUB_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
PIN = re.compile(r"^(sha256|md5)=([0-9a-fA-F]+)$")
DIGEST_HEX = {"sha256": 64, "md5": 32}
# Archive signatures at offset 0 (tar: 'ustar' at 257). Zip is not here: .pth and .npz are zips.
ARCHIVE_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
                 b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!": "rar"}


def is_url(path_or_url):
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", os.fspath(path_or_url)))


def cache_root():
    if os.environ.get("PPMATTING_CACHE"):
        return os.environ["PPMATTING_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ppmatting", "weights")


def max_download_bytes():
    value = os.environ.get("PPMATTING_MAX_DOWNLOAD_BYTES")
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise InputError(f"PPMATTING_MAX_DOWNLOAD_BYTES={value!r}: expected a number of bytes") \
            from None
    if limit <= 0:
        raise InputError(f"PPMATTING_MAX_DOWNLOAD_BYTES={value!r}: must be positive")
    return limit


def expected_digest(url):
    """``(algorithm, hex digits, where it comes from)`` for ``url`` (fragment included), or None.
    For hub-style names the digits are a prefix of the SHA-256."""
    base, _, fragment = url.partition("#")
    if fragment:
        match = PIN.match(fragment)
        if not match or len(match.group(2)) != DIGEST_HEX[match.group(1)]:
            raise InputError(f"{url}: the URL fragment must pin a checksum as #sha256=<64 hex> or "
                             f"#md5=<32 hex>")
        return match.group(1), match.group(2).lower(), "pinned in the URL"
    if base in KNOWN_MD5:
        return "md5", KNOWN_MD5[base], "Paddle's published MD5"
    parts = urllib.parse.urlsplit(base)
    match = HUB_NAME.search(os.path.basename(parts.path))
    if parts.hostname in HUB_HOSTS and match:
        return "sha256", match.group(1), "the SHA-256 prefix in the file name"
    return None


def cached_path(url):
    """Where ``url`` is (or will be) cached."""
    base = url.partition("#")[0]
    name = os.path.basename(urllib.parse.urlsplit(base).path) or "download"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "download"
    folder = hashlib.sha256(base.encode("utf-8")).hexdigest()[:32]
    return os.path.join(cache_root(), folder, name)


def _digests(path):
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            sha256.update(block)
            md5.update(block)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def _matches(digests, expected):
    algorithm, digits, _ = expected
    return digests[algorithm].startswith(digits) if algorithm == "sha256" \
        else digests[algorithm] == digits


def _archive_kind(path):
    with open(path, "rb") as handle:
        head = handle.read(512)
    for magic, kind in ARCHIVE_MAGIC.items():
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    return None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.URLError(f"redirected to a {scheme or 'relative'} URL, only "
                                        f"http(s) is followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener():
    # Only the handlers needed for http(s): no file://, ftp:// or data: through a redirect.
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler(), _HttpOnlyRedirects(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _stream(url, handle, limit):
    """Copy the body of ``url`` into ``handle``; returns the byte count."""
    request = urllib.request.Request(url, headers={"User-Agent": "ppmatting"})
    with _opener().open(request, timeout=TIMEOUT_S) as response:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise InputError(f"{url}: the server declares {int(declared):,} bytes, more than the "
                             f"{limit:,}-byte limit (PPMATTING_MAX_DOWNLOAD_BYTES); nothing kept")
        total = 0
        while True:
            block = response.read(CHUNK)
            if not block:
                if declared is not None and declared.strip().isdigit() and total != int(declared):
                    raise InputError(f"{url}: download failed (the connection closed after "
                                     f"{total:,} of {int(declared):,} bytes); nothing kept")
                return total
            total += len(block)
            if total > limit:
                raise InputError(f"{url}: the download exceeds the {limit:,}-byte limit "
                                 f"(PPMATTING_MAX_DOWNLOAD_BYTES); nothing kept")
            handle.write(block)


def download(url, expected=None, limit=None):
    """Download ``url`` (http or https) to :func:`cached_path`, verified; returns the path."""
    target = cached_path(url)
    base = url.partition("#")[0]
    limit = max_download_bytes() if limit is None else limit
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.part-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            logger.info("downloading %s", base)
            try:
                size = _stream(base, handle, limit)
            except urllib.error.HTTPError as err:
                raise InputError(f"{base}: download failed (HTTP {err.code} {err.reason}); "
                                 f"nothing kept") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                reason = getattr(err, "reason", None) or err or type(err).__name__
                raise InputError(f"{base}: download failed ({reason}); download the file "
                                 f"yourself and give its local path") from None
            handle.flush()
            os.fsync(handle.fileno())
        kind = _archive_kind(tmp)
        if kind:
            raise InputError(f"{base}: the server sent a {kind} archive, not a weights file; "
                             f"ppmatting never unpacks downloads (unpack it yourself and give "
                             f"the weights file's path); nothing kept")
        digests = _digests(tmp)
        if expected and not _matches(digests, expected):
            algorithm, digits, source = expected
            raise InputError(f"{base}: {algorithm} {digests[algorithm]} does not match {digits} "
                             f"({source}); the file was deleted")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if expected is None:
        logger.warning("%s: downloaded %d bytes without a known checksum; sha256 %s. To pin it, "
                       "use %s#sha256=%s", base, size, digests["sha256"], base, digests["sha256"])
    else:
        logger.info("%s: %d bytes, %s verified (%s)", base, size, expected[0], expected[2])
    return target


def resolve_weights_path(path_or_url):
    """A local path as is; an http(s) URL is downloaded once into the cache and verified.

    A cached file is re-verified when the URL has a checksum (a mismatch downloads it again).
    Raises a one-line :class:`InputError` for other schemes, failed downloads, oversize bodies,
    archives and checksum mismatches.
    """
    path_or_url = os.fspath(path_or_url)
    if not is_url(path_or_url):
        return path_or_url
    scheme = urllib.parse.urlsplit(path_or_url).scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"{path_or_url}: only http(s) URLs are downloaded; for a local file give "
                         f"its path")
    expected = expected_digest(path_or_url)
    target = cached_path(path_or_url)
    if os.path.isfile(target):
        if expected is None or _matches(_digests(target), expected):
            return target
        logger.warning("%s: cached copy %s fails its checksum; downloading again", path_or_url,
                       target)
        os.remove(target)
    return download(path_or_url, expected)
