"""Write a MattingDataset list file by pairing files of several folders by name.

    # online composition (fg alpha [bg]), e.g. Distinctions-646 training data
    python tools/make_list.py --root /data/D646 --columns Train/FG Train/GT --out /data/D646/train.txt
    # pre-composited (image alpha [trimap]), e.g. a test set with trimaps
    python tools/make_list.py --root /data/D646 --columns Test/Image Test/GT Test/Trimap --out /data/D646/test.txt

Files are matched by their name without extension (``GT01.png`` pairs with ``GT01.jpg``). Paths in
the list are relative to ``--root``. A name missing from any folder is an error naming it.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.utils import io  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402


def pair_by_stem(root, folders):
    tables = []
    for folder in folders:
        files = io.list_images(os.path.join(root, folder))
        if not files:
            raise InputError(f"{os.path.join(root, folder)}: no images")
        tables.append({os.path.splitext(os.path.basename(f))[0]: f for f in files})
    stems = sorted(tables[0])
    for folder, table in zip(folders[1:], tables[1:]):
        missing = [s for s in stems if s not in table]
        if missing:
            raise InputError(f"{os.path.join(root, folder)}: no file for {len(missing)} name(s) of "
                             f"{folders[0]}, first '{missing[0]}'")
    return [[os.path.relpath(table[stem], root) for table in tables] for stem in stems]


@run_cli
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="dataset root; list paths are relative to it")
    parser.add_argument("--columns", nargs="+", required=True, help="2 or 3 folders under --root")
    parser.add_argument("--out", required=True, help="list file to write")
    parser.add_argument("--separator", default=" ")
    args = parser.parse_args()
    io.check_output_file(args.out, "--out")
    if not 2 <= len(args.columns) <= 3:
        raise InputError("--columns takes 2 or 3 folders")
    rows = pair_by_stem(args.root, args.columns)
    if any(args.separator in path for row in rows for path in row):
        raise InputError(f"a path contains the separator {args.separator!r}; choose another with --separator")
    io.atomic_write_bytes(args.out, ("\n".join(args.separator.join(r) for r in rows) + "\n").encode("utf-8"))
    print(f"wrote {len(rows)} lines to {args.out}")


if __name__ == "__main__":
    main()
