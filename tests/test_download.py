"""Weights given as URLs: downloaded once, capped, checked, cached by URL, never unpacked.

A real HTTP server on 127.0.0.1 (``tests/local_http.py``) plays the weights host. Every refusal is
one line naming the URL, and leaves nothing in the cache: no final file, no partial file.
"""
import gzip
import hashlib
import io
import logging
import os
import pickle
import tarfile

import numpy as np
import pytest

from local_http import Route, serve
from ppmatting import weights
from ppmatting.utils.errors import InputError
from ppmatting.weights import download


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("PPMATTING_CACHE", str(folder))
    monkeypatch.delenv("PPMATTING_MAX_DOWNLOAD_BYTES", raising=False)
    return folder


def weights_bytes(seed=0, n=64):
    rng = np.random.default_rng(seed)
    return pickle.dumps({"w": rng.standard_normal(n).astype(np.float32)}, protocol=4)


def cached_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)


def refused(url, match, cache):
    with pytest.raises(InputError, match=match) as info:
        weights.resolve_weights_path(url)
    message = str(info.value)
    assert "\n" not in message and url.split("#")[0] in message, message
    assert cached_files(cache) == [], "a refused download left files behind"
    return message


def test_unknown_url_is_downloaded_once_and_its_sha256_is_printed(cache, caplog):
    body = weights_bytes(1)
    with serve({"/models/dim.pdparams": Route(body)}) as server:
        url = server.base + "/models/dim.pdparams"
        with caplog.at_level(logging.WARNING, logger="ppmatting.weights"):
            path = weights.resolve_weights_path(url)
        sha = hashlib.sha256(body).hexdigest()
        assert f"{url}#sha256={sha}" in caplog.text  # the line to pin it
        assert open(path, "rb").read() == body and os.path.basename(path) == "dim.pdparams"
        assert weights.resolve_weights_path(url) == path     # cached: no second request
        assert server.requests == ["/models/dim.pdparams"]
        np.testing.assert_array_equal(weights.read_state_dict(path)["w"],
                                      pickle.loads(body)["w"])
    assert cached_files(cache) == [os.path.relpath(path, cache)]


def test_pinned_checksum_is_checked_and_a_mismatch_deletes_the_file(cache):
    body = weights_bytes(2)
    sha = hashlib.sha256(body).hexdigest()
    with serve({"/a.pdparams": Route(body)}) as server:
        wrong = server.base + "/a.pdparams#sha256=" + "0" * 64
        message = refused(wrong, "does not match", cache)
        assert sha in message and "pinned in the URL" in message
        good = weights.resolve_weights_path(server.base + "/a.pdparams#sha256=" + sha)
        assert open(good, "rb").read() == body
        # md5 pins work the same way
        md5 = hashlib.md5(body).hexdigest()
        assert weights.resolve_weights_path(server.base + "/a.pdparams#md5=" + md5) == good
    with pytest.raises(InputError, match="#sha256=<64 hex>"):
        weights.resolve_weights_path("http://127.0.0.1:9/a.pdparams#sha256=abc")


def test_a_corrupted_cached_copy_is_downloaded_again(cache):
    body = weights_bytes(3)
    sha = hashlib.sha256(body).hexdigest()
    with serve({"/a.pdparams": Route(body)}) as server:
        url = server.base + "/a.pdparams#sha256=" + sha
        path = weights.resolve_weights_path(url)
        with open(path, "r+b") as handle:
            handle.write(b"\x00\x00")
        assert weights.resolve_weights_path(url) == path
        assert open(path, "rb").read() == body and len(server.requests) == 2


def test_known_checksums_paddle_md5_and_hub_style_names(cache, monkeypatch):
    # The facts: Paddle's published MD5 of its VGG16, mmediting's SHA-256 prefixes
    assert download.expected_digest("https://paddle-hapi.bj.bcebos.com/models/vgg16.pdparams")[:2] \
        == ("md5", "89bbffc0f87d260be9b8cdc169c991c4")
    stage1 = ("https://download.openmmlab.com/mmediting/mattors/dim/"
              "dim_stage1_v16_1x1_1000k_comp1k_SAD-53.8_20200605_140257-979a420f.pth")
    assert download.expected_digest(stage1)[:2] == ("sha256", "979a420f")
    assert download.expected_digest("https://example.com/model-979a420f.pth") is None
    # ... enforced end to end (the local server standing in for those hosts)
    body = weights_bytes(4)
    sha = hashlib.sha256(body).hexdigest()
    monkeypatch.setattr(download, "HUB_HOSTS", ("127.0.0.1",))
    with serve({f"/dim-{sha[:8]}.pth": Route(body), "/dim-deadbeef.pth": Route(body),
                "/vgg16.pdparams": Route(body)}) as server:
        assert open(weights.resolve_weights_path(f"{server.base}/dim-{sha[:8]}.pth"), "rb").read() \
            == body
        refused(server.base + "/dim-deadbeef.pth", "does not match deadbeef .the SHA-256 prefix",
                cache / "unused")
        monkeypatch.setitem(download.KNOWN_MD5, server.base + "/vgg16.pdparams", "1" * 32)
        message = refused(server.base + "/vgg16.pdparams", "does not match", cache / "unused")
        assert "Paddle's published MD5" in message
    assert len(cached_files(cache)) == 1  # only the good one


def test_size_cap_declared_and_undeclared(cache, monkeypatch):
    monkeypatch.setenv("PPMATTING_MAX_DOWNLOAD_BYTES", "1000")
    body = bytes(5000)
    with serve({"/declared.pdparams": Route(body), "/undeclared.pdparams": Route(body, length=None),
                "/small.pdparams": Route(weights_bytes(5, 16), length=None)}) as server:
        refused(server.base + "/declared.pdparams", "declares 5,000 bytes, more than the 1,000", cache)
        refused(server.base + "/undeclared.pdparams", "exceeds the 1,000-byte limit", cache)
        assert os.path.getsize(weights.resolve_weights_path(server.base + "/small.pdparams")) < 1000
    monkeypatch.setenv("PPMATTING_MAX_DOWNLOAD_BYTES", "lots")
    with pytest.raises(InputError, match="PPMATTING_MAX_DOWNLOAD_BYTES"):
        weights.resolve_weights_path("http://127.0.0.1:9/x.pdparams")


def test_two_urls_with_the_same_file_name_never_share_a_file(cache):
    one, two = weights_bytes(6), weights_bytes(7)
    with serve({"/v1/dim.pdparams": Route(one), "/v2/dim.pdparams": Route(two)}) as server:
        path1 = weights.resolve_weights_path(server.base + "/v1/dim.pdparams")
        path2 = weights.resolve_weights_path(server.base + "/v2/dim.pdparams")
    assert path1 != path2 and os.path.basename(path1) == os.path.basename(path2) == "dim.pdparams"
    assert open(path1, "rb").read() == one and open(path2, "rb").read() == two


def test_archives_are_never_unpacked(cache):
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as archive:
        info = tarfile.TarInfo("model.pdparams")
        data = weights_bytes(8)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    routes = {"/gz.pdparams": Route(gzip.compress(weights_bytes(8))),
              "/tar.pdparams": Route(tar_buffer.getvalue())}
    with serve(routes) as server:
        refused(server.base + "/gz.pdparams", "a gzip archive, not a weights file", cache)
        refused(server.base + "/tar.pdparams", "a tar archive, not a weights file", cache)


def test_redirects_are_followed_for_http_only(cache):
    body = weights_bytes(9)
    with serve({"/old/dim.pdparams": Route(location="/new/dim.pdparams"),
                "/new/dim.pdparams": Route(body),
                "/evil.pdparams": Route(location="file:///etc/passwd"),
                "/ftp.pdparams": Route(location="ftp://127.0.0.1/dim.pdparams")}) as server:
        path = weights.resolve_weights_path(server.base + "/old/dim.pdparams")
        assert open(path, "rb").read() == body
        assert server.requests == ["/old/dim.pdparams", "/new/dim.pdparams"]
        assert path == download.cached_path(server.base + "/old/dim.pdparams")
        refused(server.base + "/evil.pdparams", "file:///etc/passwd' is not allowed", cache / "unused")
        refused(server.base + "/ftp.pdparams", "only http.s. is followed", cache / "unused")


def test_server_errors_and_broken_transfers_leave_nothing(cache):
    with serve({"/error.pdparams": Route(b"oops", status=500),
                "/short.pdparams": Route(bytes(100), length=1000)}) as server:
        refused(server.base + "/error.pdparams", "HTTP 500", cache)
        refused(server.base + "/missing.pdparams", "HTTP 404", cache)
        refused(server.base + "/short.pdparams", "download failed", cache)


def test_other_schemes_are_refused(cache):
    for url in ("ftp://example.com/dim.pdparams", "file:///etc/passwd"):
        with pytest.raises(InputError, match="only http"):
            weights.resolve_weights_path(url)
    assert weights.resolve_weights_path("relative/dim.pdparams") == "relative/dim.pdparams"
