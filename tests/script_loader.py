"""Load one of the repository's scripts (a tool, deploy/python/infer.py, a benchmark, a TIPC
script) as a module, so tests can call its ``main`` or helpers in-process."""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path, name=None, register=False):
    """The module of ``ROOT/relative_path`` (e.g. ``tools/predict.py``), executed fresh.

    ``name``: its module name (default ``ppm_`` + the path's parts); ``register``: also put it in
    ``sys.modules`` under that name, for code that pickles the script's functions by module name
    (worker processes)."""
    path = os.path.join(ROOT, relative_path)
    if name is None:
        name = "ppm_" + os.path.splitext(relative_path)[0].replace(os.sep, "_").replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
