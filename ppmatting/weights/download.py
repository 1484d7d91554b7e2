"""Weights given as an http(s) URL: downloaded once into a local cache."""
import os
import re

from ppmatting.utils.errors import InputError


def resolve_weights_path(path_or_url):
    """A local path as is; an http(s) URL is downloaded once to Paddle's weights cache."""
    path_or_url = os.fspath(path_or_url)
    if not re.match(r"^https?://", path_or_url):
        return path_or_url
    from paddle.utils.download import get_weights_path_from_url
    try:
        return get_weights_path_from_url(path_or_url)
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path_or_url}: download failed ({reason}); download the file yourself "
                         f"and give its local path") from None

