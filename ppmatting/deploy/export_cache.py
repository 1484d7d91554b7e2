"""The export cache: a DIM is exported to Paddle Inference and checked once, then reused.

``tools/predict.py``, ``tools/bg_replace.py`` and ``tools/val.py`` run DIM through the exported
predictor. Exporting and checking it against the dynamic graph takes a while, so the checked export
is kept in the user's cache folder and the next call with the same model finds it there without
building the network at all.

* Where: ``$PPMATTING_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ppmatting``, else
  ``~/.cache/ppmatting``; each export is a folder ``exports/<key>/`` holding ``model.json``,
  ``model.pdiparams``, ``deploy.yaml`` (with the parity check's numbers) and ``key.json`` (what
  the key was made of, for people looking into the folder).
* Key: SHA-256 over the model's section of the config after ``--opts`` (canonical JSON), the
  SHA-256 of the content of each weights file (``--model_path`` and every ``pretrained`` file the
  model section names; a URL counts by its text), the Paddle version, and
  :data:`EXPORT_FORMAT`, raised when the exported graph's layout changes.
* Safe when processes race: an export is written into a temporary folder beside its final place
  and renamed into place in one step; a process that finds the place taken drops its own copy
  and uses the one there. A folder without a readable ``deploy.yaml`` is not an entry.
* Bounded: at most :data:`MAX_ENTRIES` exports are kept; the least recently used go first.
"""
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from ppmatting.weights.files import check_weights_file

CACHE_ENV = "PPMATTING_CACHE_DIR"
EXPORT_FORMAT = 1
MAX_ENTRIES = 8
STALE_SECONDS = 24 * 3600
_URL = re.compile(r"^https?://")


def cache_root():
    """The cache folder (not created here)."""
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ppmatting")


def exports_dir():
    return os.path.join(cache_root(), "exports")


def file_digest(path, chunk=1 << 22):
    """SHA-256 hex digest of a weights file's content; a missing, empty or folder path is a
    one-line InputError (:func:`~ppmatting.weights.files.check_weights_file`)."""
    path = check_weights_file(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _pretrained_values(node):
    """Every non-empty ``pretrained`` value in a (nested) config mapping."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pretrained" and value:
                yield str(value)
            else:
                yield from _pretrained_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pretrained_values(value)


def export_key(model_config, model_path=None):
    """``(key, parts)``: the hex key of a model and the dict it was computed from.

    ``model_config``: the config's ``model`` mapping after ``--opts``; ``model_path``: the
    weights file loaded on top (or None).
    """
    import paddle

    weights = {}
    for source in list(_pretrained_values(model_config)) + ([os.fspath(model_path)]
                                                            if model_path else []):
        weights[source] = source if _URL.match(source) else file_digest(source)
    parts = {"model": model_config, "weights": weights, "paddle": paddle.__version__,
             "export_format": EXPORT_FORMAT}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], parts


def lookup(key):
    """The folder of a complete cached export, or None."""
    folder = os.path.join(exports_dir(), key)
    from ppmatting.deploy.info import DEPLOY_FILE, load_deploy_info

    if not os.path.isfile(os.path.join(folder, DEPLOY_FILE)):
        return None
    try:
        load_deploy_info(folder)  # names files that must exist
    except Exception:  # noqa: BLE001 - a damaged entry is simply not an entry
        return None
    os.utime(folder)  # least recently used goes first when pruning
    return folder


def store(key, build, parts=None):
    """Build an export with ``build(folder)`` in a temporary folder and move it into the cache
    under ``key``. Returns the final folder (another process's, if it got there first).
    Nothing is left behind when ``build`` raises."""
    root = exports_dir()
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, key)
    partial = tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root)
    try:
        build(partial)
        with open(os.path.join(partial, "key.json"), "w", encoding="utf-8") as handle:
            json.dump(parts or {}, handle, indent=2, sort_keys=True, default=str)
        os.chmod(partial, 0o755)  # mkdtemp makes it private; the export is not secret
        try:
            os.rename(partial, final)  # atomic; fails if another process already renamed
        except OSError:
            if lookup(key) is None:  # a damaged entry in the way: replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(partial, final)
    finally:
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)
    prune()
    return final


def prune(keep=MAX_ENTRIES):
    """Remove the least recently used exports beyond ``keep``, and temporary folders a crashed
    process left more than a day ago."""
    root = exports_dir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    entries = []
    for name in names:
        path = os.path.join(root, name)
        try:
            mtime = os.path.getmtime(path)
        except OSError:
            continue
        if name.startswith(".tmp-"):
            if mtime < time.time() - STALE_SECONDS:  # younger ones may be being written
                shutil.rmtree(path, ignore_errors=True)
            continue
        entries.append((mtime, path))
    for _, path in sorted(entries, reverse=True)[keep:]:
        shutil.rmtree(path, ignore_errors=True)
