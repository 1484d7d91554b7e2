"""Training checkpoints that a kill can never leave half-written.

A checkpoint is a folder (``output/iter_1000/``, ``output/best_model/``) holding:

* ``model.pdparams``: the model's state dict (loadable by ``ppmatting.weights.load_weights``
  and by ``model.pretrained`` in a config, e.g. to start stage 2 from stage 1's best model);
* ``model.pdopt``: the optimiser's state dict (Adam moments, step counters, lr-scheduler state);
* ``rng_state.pkl``: Paddle's, NumPy's and Python's random generator states;
* ``train_state.json``: iteration, seed, best metric and whatever else the trainer records;
* ``manifest.json``, written last: the size and SHA-256 of every other file.

Atomicity: everything is written into a hidden temporary folder next to the target, each file is
flushed and fsync'ed, and only then is the folder renamed into place. Replacing an existing
checkpoint (``best_model``) takes two renames (old -> ``.<name>.old``, new -> ``<name>``); if the
process dies between them, :func:`recover` (run by every save and load) puts the old one back. A
folder without a matching manifest is reported as incomplete instead of being half-loaded.

Reading never runs code from the folder: ``model.pdparams``, ``model.pdopt`` and ``rng_state.pkl``
are pickles, read by ``ppmatting.weights.safe_pickle`` (numeric arrays and plain containers only;
the RNG file may also hold Paddle's generator state, rebuilt from checked integers), so a checkpoint
folder someone hands to ``--resume_model`` is no more dangerous than an image.
"""
import glob
import hashlib
import json
import os
import pickle
import random
import shutil
import tempfile

import numpy as np

from ppmatting.utils.errors import InputError
from ppmatting.weights.files import read_paddle_file, read_pickle_file
from ppmatting.weights.safe_pickle import Global, Pending, Refused

MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "model.pdopt"
RNG_FILE = "rng_state.pkl"
STATE_FILE = "train_state.json"
MANIFEST_FILE = "manifest.json"
KNOWN_FILES = {MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, STATE_FILE, MANIFEST_FILE}


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_synced(path, write):
    """Call ``write(path)`` to create a file, then make it durable before returning."""
    write(path)
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _writer_pickle(obj):
    def write(path):
        with open(path, "wb") as handle:
            pickle.dump(obj, handle, protocol=4)
    return write


def _writer_json(obj):
    def write(path):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=2)
    return write


def _old_path(path):
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.old")


def _tmp_pattern(path):
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.tmp-*")


def _only_checkpoint_files(folder):
    """True when ``folder`` holds nothing but files a checkpoint writes (so it is safe to delete
    as a leftover of ours)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return all(name in KNOWN_FILES or name.endswith(".json") for name in names)


def recover(path):
    """Finish or undo a replacement that a crash interrupted.

    ``<name>`` missing but ``.<name>.old`` present: the old checkpoint is renamed back. Both present:
    the new one was already in place, the leftover old copy is deleted. Leftover temporary folders
    of an interrupted write are deleted.
    """
    path = os.path.abspath(path)
    old = _old_path(path)
    if os.path.isdir(old) and _only_checkpoint_files(old):
        if os.path.isdir(path):
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(old, path)
            except OSError:  # another process (a second rank) recovered it first
                pass
    for leftover in glob.glob(_tmp_pattern(path)):
        if os.path.isdir(leftover) and _only_checkpoint_files(leftover):
            shutil.rmtree(leftover, ignore_errors=True)


def _publish(tmp_dir, path):
    """Move the finished ``tmp_dir`` to ``path`` (replacing an existing checkpoint)."""
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        old = _old_path(path)
        if os.path.isdir(old):
            shutil.rmtree(old)
        os.rename(path, old)
        os.rename(tmp_dir, path)
        _fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp_dir, path)
        _fsync_dir(parent)


def capture_rng_state():
    """Paddle's (all devices), NumPy's global and Python's random states, as one picklable dict."""
    import paddle
    return {"paddle": paddle.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def restore_rng_state(state):
    import paddle
    if state.get("paddle") is not None:
        paddle.set_rng_state(state["paddle"])
    if state.get("numpy") is not None:
        np.random.set_state(state["numpy"])
    if state.get("python") is not None:
        random.setstate(state["python"])


def save_checkpoint(path, model_state, optimizer_state=None, train_state=None, rng_state=None,
                    extra_files=None):
    """Write a checkpoint folder atomically.

    Args:
        path: the checkpoint folder to create or replace, e.g. ``output/iter_1000``.
        model_state: ``model.state_dict()`` (of the bare model, not a DataParallel wrapper).
        optimizer_state: ``optimizer.state_dict()`` or None.
        train_state: JSON-serialisable dict (iteration, seed, best metric...).
        rng_state: from :func:`capture_rng_state`, or None.
        extra_files: ``{file_name: JSON-serialisable object}`` written as JSON beside the rest
            (e.g. ``metrics.json`` in ``best_model``).
    Returns the absolute folder path.
    """
    import paddle
    files = {MODEL_FILE: lambda p: paddle.save(model_state, p)}
    if optimizer_state is not None:
        files[OPTIMIZER_FILE] = lambda p: paddle.save(optimizer_state, p)
    if rng_state is not None:
        files[RNG_FILE] = _writer_pickle(rng_state)
    if train_state is not None:
        files[STATE_FILE] = _writer_json(train_state)
    for file_name, obj in (extra_files or {}).items():
        files[file_name] = _writer_json(obj)
    return _write_checkpoint(path, files)


def publish_model(source_model_file, path, extra_files=None):
    """Copy a ``model.pdparams`` (e.g. the best model of DIM's last stage) into a new checkpoint
    folder ``path`` (``SAVE_DIR/best_model``), atomically, with ``extra_files`` as JSON beside it.
    The bytes are copied as they are (nothing is unpickled). Returns the absolute folder path."""
    files = {MODEL_FILE: lambda p: shutil.copyfile(source_model_file, p)}
    for file_name, obj in (extra_files or {}).items():
        files[file_name] = _writer_json(obj)
    return _write_checkpoint(path, files)


def _write_checkpoint(path, files):
    """Create the folder ``path`` holding ``files`` ({name: write(file_path)}) and a manifest:
    written into a hidden temporary folder, every file fsync'ed, then renamed into place."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    recover(path)
    tmp_dir = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        manifest = {}
        for file_name, write in files.items():
            file_path = os.path.join(tmp_dir, file_name)
            _write_synced(file_path, write)
            manifest[file_name] = {"bytes": os.path.getsize(file_path), "sha256": _sha256(file_path)}
        _write_synced(os.path.join(tmp_dir, MANIFEST_FILE), _writer_json({"files": manifest}))
        os.chmod(tmp_dir, 0o755)  # mkdtemp makes it private; a checkpoint is an ordinary folder
        _fsync_dir(tmp_dir)
        _publish(tmp_dir, path)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return path


def verify_checkpoint(path):
    """Check that ``path`` is a complete checkpoint folder; returns its manifest's file table.

    Raises InputError naming the folder and the problem (missing, incomplete, corrupt).
    """
    path = os.path.abspath(path)
    if os.path.isfile(path):
        raise InputError(f"{path}: is a file; --resume_model takes a checkpoint folder "
                         f"(e.g. output/iter_1000)")
    recover(path)
    if not os.path.isdir(path):
        raise InputError(f"{path}: checkpoint folder not found")
    manifest_path = os.path.join(path, MANIFEST_FILE)
    if not os.path.isfile(manifest_path):
        raise InputError(f"{path}: incomplete checkpoint (no {MANIFEST_FILE}); it was not written "
                         f"by ppmatting's trainer or its write was interrupted")
    manifest = _read_json(manifest_path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
            _plain_file_name(name) and isinstance(info, dict) and type(info.get("bytes")) is int
            and isinstance(info.get("sha256"), str) for name, info in files.items()):
        # a manifest naming '../x' or '/dev/...' would have us read files outside the folder
        raise InputError(f"{manifest_path}: unreadable manifest (expected files: {{name: "
                         f"{{bytes, sha256}}}} for files inside the folder)")
    for file_name, info in files.items():
        file_path = os.path.join(path, file_name)
        if os.path.islink(file_path):
            # the trainer writes plain files; a link could point at /proc/kcore or anything else
            raise InputError(f"{file_path}: a symbolic link; a checkpoint folder holds plain files")
        if not os.path.isfile(file_path):
            raise InputError(f"{path}: checkpoint is missing {file_name}")
        if os.path.getsize(file_path) != info["bytes"] or _sha256(file_path) != info["sha256"]:
            raise InputError(f"{file_path}: corrupt (size or checksum differs from {MANIFEST_FILE})")
    return files


MAX_JSON_BYTES = 64 << 20  # a manifest or train state takes a few kB


def _plain_file_name(name):
    return isinstance(name, str) and name not in ("", ".", "..") and \
        os.path.basename(name) == name and "\\" not in name and "\0" not in name


def _read_json(file_path):
    """A JSON file of a checkpoint folder, or a one-line InputError (too large, not JSON, nested
    deeper than Python's parser recurses)."""
    if os.path.getsize(file_path) > MAX_JSON_BYTES:
        raise InputError(f"{file_path}: {os.path.getsize(file_path):,} bytes, more than a "
                         f"checkpoint's JSON file can need")
    try:
        with open(file_path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, RecursionError) as err:
        raise InputError(f"{file_path}: not readable JSON ({type(err).__name__})") from None


def read_train_state(path):
    """Just ``train_state.json`` of a verified checkpoint folder (a dict, empty if absent)."""
    path = os.path.abspath(path)
    files = verify_checkpoint(path)
    if STATE_FILE not in files:
        return {}
    state = _read_json(os.path.join(path, STATE_FILE))
    if not isinstance(state, dict):
        raise InputError(f"{os.path.join(path, STATE_FILE)}: expected a JSON object")
    return state


def load_checkpoint(path):
    """Read a checkpoint folder written by :func:`save_checkpoint`, running nothing from it.

    Returns a dict with ``model`` (state dict of ``paddle.Tensor``), ``optimizer`` (state dict as
    ``paddle.load`` returns it, or None), ``rng`` (dict for :func:`restore_rng_state`, or None),
    ``train_state`` (dict, empty if absent) and ``path``. A file that asks for anything but data is
    refused with one line naming it.
    """
    path = os.path.abspath(path)
    files = verify_checkpoint(path)
    if MODEL_FILE not in files:
        raise InputError(f"{path}: checkpoint has no {MODEL_FILE}")

    def load(file_name, reader):
        if file_name not in files:
            return None
        file_path = os.path.join(path, file_name)
        try:
            return reader(file_path)
        except InputError:
            raise
        except Exception as err:  # a checksum-valid file that still fails: wrong format
            raise InputError(f"{file_path}: cannot be read ({err})") from None

    def read_rng(file_path):
        return _checked_rng_state(read_pickle_file(file_path, extra_globals=_rng_globals()),
                                  file_path)

    model = load(MODEL_FILE, read_paddle_file)
    if not isinstance(model, dict):
        raise InputError(f"{os.path.join(path, MODEL_FILE)}: not a state dict")
    optimizer = load(OPTIMIZER_FILE, read_paddle_file)
    if optimizer is not None and not isinstance(optimizer, dict):
        raise InputError(f"{os.path.join(path, OPTIMIZER_FILE)}: not an optimizer state dict")
    train_state = load(STATE_FILE, _read_json) or {}
    if not isinstance(train_state, dict):
        raise InputError(f"{os.path.join(path, STATE_FILE)}: expected a JSON object")
    return {
        "path": path,
        "model": model,
        "optimizer": optimizer,
        "rng": load(RNG_FILE, read_rng),
        "train_state": train_state,
    }


# ---- the RNG file: Paddle's generator states, NumPy's and Python's, read as checked data -------
GENERATOR_STATE = ("paddle.base.libpaddle", "GeneratorState")
MT_TEXT_BYTES = set(b"0123456789 -")


def _rng_globals():
    return {GENERATOR_STATE: Global(*GENERATOR_STATE, new=_PendingGeneratorState)}


class _PendingGeneratorState(Pending):
    """``GeneratorState`` as pickled by Paddle 3: ``NEWOBJ()`` then ``BUILD`` with
    ``(device, seed, offset, engine)``, where ``engine`` is the text of a std::mt19937 state as a
    list of byte values (digits and spaces). Rebuilt through the pybind class's own
    ``__setstate__`` once every field has been checked."""
    what = "Paddle generator state"

    def __init__(self, *args):
        if args:
            raise Refused("GeneratorState() takes no arguments")
        self.state = None

    def build(self, state):
        ok = type(state) is tuple and len(state) == 4 and self.state is None and \
            all(type(v) is int and -2 ** 63 <= v < 2 ** 64 for v in state[:3]) and \
            type(state[3]) is list and len(state[3]) <= 1 << 16 and \
            all(type(b) is int and b in MT_TEXT_BYTES for b in state[3])
        if not ok:
            raise Refused("GeneratorState with an unexpected state")
        self.state = state

    def finish(self):
        from paddle.base import libpaddle
        if self.state is None:
            raise Refused("GeneratorState without its state")
        generator = libpaddle.GeneratorState.__new__(libpaddle.GeneratorState)
        try:
            generator.__setstate__(self.state)
        except (TypeError, ValueError, RuntimeError) as err:
            raise Refused(f"GeneratorState: {err}") from None
        return generator


def _checked_rng_state(state, file_path):
    """The RNG dict of :func:`capture_rng_state`, with every part's type and size checked so that
    :func:`restore_rng_state` cannot fail halfway."""
    def bad(what):
        return InputError(f"{file_path}: not an RNG state written by ppmatting ({what})")

    if not isinstance(state, dict) or not set(state) <= {"paddle", "numpy", "python"}:
        raise bad("expected a dict with paddle/numpy/python")
    from paddle.base import libpaddle
    paddle_state = state.get("paddle")
    if paddle_state is not None and (type(paddle_state) is not list or not all(
            isinstance(g, libpaddle.GeneratorState) for g in paddle_state)):
        raise bad("paddle")
    numpy_state = state.get("numpy")
    if numpy_state is not None and not (
            type(numpy_state) is tuple and len(numpy_state) == 5 and numpy_state[0] == "MT19937"
            and isinstance(numpy_state[1], np.ndarray) and numpy_state[1].shape == (624,)
            and numpy_state[1].dtype.kind in "ui" and all(
                isinstance(v, (int, np.integer)) for v in numpy_state[2:4])
            and isinstance(numpy_state[4], (float, np.floating))):
        raise bad("numpy")
    python_state = state.get("python")
    if python_state is not None and not (
            type(python_state) is tuple and len(python_state) == 3
            and type(python_state[1]) is tuple and len(python_state[1]) == 625
            and all(type(v) is int and 0 <= v < 2 ** 32 for v in python_state[1])):
        raise bad("python")
    return state


def iteration_checkpoints(save_dir, prefix="iter_"):
    """``[(iteration, folder)]`` of the complete ``iter_N`` folders in ``save_dir``, oldest first."""
    found = []
    if not os.path.isdir(save_dir):
        return found
    for name in os.listdir(save_dir):
        if not name.startswith(prefix):
            continue
        try:
            iteration = int(name[len(prefix):])
        except ValueError:
            continue
        folder = os.path.join(save_dir, name)
        if os.path.isfile(os.path.join(folder, MANIFEST_FILE)):
            found.append((iteration, folder))
    return sorted(found)


def prune_checkpoints(save_dir, keep, prefix="iter_"):
    """Delete the oldest ``iter_N`` folders so that at most ``keep`` remain (``keep <= 0``: keep
    all). ``best_model`` is never touched. Returns the deleted folders."""
    if keep is None or keep <= 0:
        return []
    existing = iteration_checkpoints(save_dir, prefix)
    doomed = [folder for _, folder in existing[:max(0, len(existing) - keep)]]
    for folder in doomed:
        # Rename first so that a kill during the deletion leaves no half-deleted iter_N behind.
        parent, name = os.path.split(folder)
        trash = os.path.join(parent, f".{name}.tmp-deleting")
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return doomed


# ---- optimiser state across processes -----------------------------------------------------------
def parameter_names(model):
    """``{structured name: Paddle's unique parameter name}``, e.g. ``{'decoder.deconv1.weight':
    'conv2d_13.w_0'}``. Optimiser states are keyed by the unique names, which depend on how many
    layers the process created before the model; the map lets a state saved in one process be
    loaded into a model built in another (a resumed run, a test)."""
    return {key: param.name for key, param in model.named_parameters()}


def _rename_state_keys(state, mapping):
    """Rename optimiser-state keys by parameter name with ``mapping`` {old name: new name}.

    Accumulator keys are ``<param name>_<accumulator>_<n>`` (``conv2d_0.w_0_moment1_0``); AMP's
    ``master_weights`` is a dict keyed by parameter name; ``LR_Scheduler`` is kept as is.
    """
    olds = sorted(mapping, key=len, reverse=True)  # longest first: 'conv2d_1.w_0' vs 'conv2d_11.w_0'

    def rename(key):
        if key in mapping:
            return mapping[key]
        for old in olds:
            if key.startswith(old + "_"):
                return mapping[old] + key[len(old):]
        return key

    renamed = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, dict):
            renamed[key] = {rename(k): v for k, v in value.items()}
        elif key == "LR_Scheduler":
            renamed[key] = value
        else:
            renamed[rename(key)] = value
    return renamed


def optimizer_state_by_structure(state, saved_names):
    """Optimiser state keyed by structured parameter names (``decoder.weight_moment1_0``), given
    the ``{structured: Paddle name}`` map recorded when it was saved; comparable across runs."""
    return _rename_state_keys(state, {paddle_name: key for key, paddle_name in saved_names.items()})


def rename_optimizer_state(state, saved_names, model):
    """Rename an optimiser ``state`` saved with ``saved_names`` (from :func:`parameter_names` at
    save time) to ``model``'s current parameter names, so ``optimizer.set_state_dict`` finds them."""
    current = parameter_names(model)
    mapping = {old: current[key] for key, old in saved_names.items() if key in current}
    if all(old == new for old, new in mapping.items()):
        return state
    return _rename_state_keys(state, mapping)
