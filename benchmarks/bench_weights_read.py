"""Time and memory of reading a full-size DIM checkpoint: ppmatting's restricted readers against
the unrestricted ones they replace.

    python benchmarks/bench_weights_read.py [--repeat 3] [--folder /tmp/bench_weights]

Writes one set of seeded random weights with the paper's DIM shapes (50 tensors, 26,276,802
float32 values, about 105 MB) as a Paddle ``.pdparams`` (``paddle.save``) and as
PyTorch ``.pth`` files in the zip and legacy formats (with torch when it is installed, else with
the tests' writer ``tests/pickle_forge.py``, which ``tools/dev/make_pth_fixtures.py --check-forge``
checks against torch), then reads each file with ppmatting's ``read_state_dict`` and with the
unrestricted reader of its format (``pickle.load`` and ``paddle.load`` for ``.pdparams``;
``torch.load`` when torch is installed). Prints seconds (best of ``--repeat``) and the peak of
memory allocated during the read (``tracemalloc``, which NumPy reports to; torch's C++ allocations
are not seen: n/a), for the same files in the same run. Exit code 1 if any reader returns different values.
"""
import argparse
import importlib.util
import logging
import os
import pickle
import sys
import time
import tracemalloc
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from ppmatting.weights import read_state_dict  # noqa: E402

def dim_state(seed=0):
    """{name: float32 array} with the shapes of the paper's DIM (ppmatting's names)."""
    from ppmatting.models.dim import dim_vgg16
    from ppmatting.weights import network_shapes
    rng = np.random.default_rng(seed)
    return OrderedDict((name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
                       for name, shape in network_shapes(dim_vgg16()).items())


def write_files(folder, state):
    import paddle
    os.makedirs(folder, exist_ok=True)
    files = {"pdparams": os.path.join(folder, "dim.pdparams"),
             "pth (zip)": os.path.join(folder, "dim_zip.pth"),
             "pth (legacy)": os.path.join(folder, "dim_legacy.pth")}
    paddle.save({name: paddle.to_tensor(value) for name, value in state.items()}, files["pdparams"])
    obj = {"meta": {"iter": 1000000}, "state_dict": state}
    try:
        import torch
        tensors = OrderedDict((name, torch.from_numpy(value)) for name, value in state.items())
        torch.save({"meta": obj["meta"], "state_dict": tensors}, files["pth (zip)"])
        torch.save({"meta": obj["meta"], "state_dict": tensors}, files["pth (legacy)"],
                   _use_new_zipfile_serialization=False)
        writer = f"torch {torch.__version__}"
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "pickle_forge", os.path.join(ROOT, "tests", "pickle_forge.py"))
        forge = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(forge)
        forge.write_pth(files["pth (zip)"], obj)
        forge.write_pth_legacy(files["pth (legacy)"], obj)
        writer = "tests/pickle_forge.py (torch not installed)"
    return files, writer


def readers_for(kind):
    readers = [("ppmatting read_state_dict (restricted)", read_state_dict)]
    if kind == "pdparams":
        import paddle

        def plain_pickle(path):
            with open(path, "rb") as handle:
                return pickle.load(handle)
        readers += [("pickle.load (runs any code)", plain_pickle),
                    ("paddle.load(return_numpy=True) (runs any code)",
                     lambda path: paddle.load(path, return_numpy=True))]
    else:
        try:
            import torch
            readers.append(("torch.load(weights_only=True)",
                            lambda path: {k: v.numpy() for k, v in
                                          torch.load(path, weights_only=True)["state_dict"].items()}))
        except ImportError:
            pass
    return readers


def measure(read, path, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = read(path)
        best = min(best, time.perf_counter() - start)
        del result
    tracemalloc.start()
    result = read(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", default="/tmp/bench_weights_read")
    args = parser.parse_args(argv)
    logging.getLogger("ppmatting.weights").setLevel(logging.WARNING)  # not the 'ignoring meta' line
    state = dim_state()
    files, writer = write_files(args.folder, state)
    total_mb = sum(v.nbytes for v in state.values()) / 1e6
    print(f"DIM weights: {len(state)} tensors, {total_mb:.1f} MB of float32; .pth written by {writer}")
    print(f"| file | size MB | reader | seconds (best of {args.repeat}) | peak allocated MB |")
    print("|---|---|---|---|---|")
    failures = 0
    for kind, path in files.items():
        for name, read in readers_for(kind):
            seconds, peak, result = measure(read, path, args.repeat)
            values = result.get("state_dict", result) if isinstance(result, dict) else result
            same = all(np.array_equal(np.asarray(values[k][1] if isinstance(values[k], tuple)
                                                 else values[k]), v) for k, v in state.items())
            failures += not same
            # torch allocates tensors in C++, where tracemalloc does not look
            memory = "n/a" if name.startswith("torch") else f"{peak / 1e6:.0f}"
            print(f"| {kind} | {os.path.getsize(path) / 1e6:.1f} | {name} | {seconds:.3f} | "
                  f"{memory} |{'' if same else ' VALUES DIFFER'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
