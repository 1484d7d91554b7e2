"""Check the relative links of the Markdown docs: every ``[text](path)`` and ``[text](path#anchor)``
in ``docs/*.md`` and ``README*.md`` must name a file that exists and, with ``#anchor``, a heading of
that file.

    python tools/dev/check_doc_links.py [--root REPO]     # prints each broken link; exit 1 if any

Anchors follow GitHub's rule for headings: lower case, every character that is not a letter, a
digit, a space, ``-`` or ``_`` dropped, spaces turned into ``-``; a repeated heading gets ``-1``,
``-2``, ... Links to web addresses (``http:``, ``https:``, ``mailto:``) are not followed. Links
inside fenced code blocks and inline code are not links and are skipped. Needs only the standard
library, so it runs without the project installed.
"""
import argparse
import os
import re
import sys
from collections import Counter

# [text](target) or ![alt](target); the target ends at the first space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
EXTERNAL = ("http:", "https:", "mailto:", "ftp:")


def doc_files(root):
    """The Markdown files whose links are checked: README*.md at the root and docs/*.md."""
    names = sorted(n for n in os.listdir(root) if n.startswith("README") and n.endswith(".md"))
    files = [os.path.join(root, n) for n in names]
    docs = os.path.join(root, "docs")
    if os.path.isdir(docs):
        files += [os.path.join(docs, n) for n in sorted(os.listdir(docs)) if n.endswith(".md")]
    return files


def _prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, line


def heading_anchor(title):
    """GitHub's anchor for a heading's text (markup such as backquotes and links removed first)."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)   # a link in a heading keeps its text
    title = title.replace("`", "").strip().lower()
    kept = "".join(ch for ch in title if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def anchors_of(path):
    """The set of anchors GitHub gives the headings of one Markdown file."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    seen = Counter()
    anchors = set()
    for _, line in _prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = heading_anchor(match.group(2))
        anchors.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return anchors


def broken_links(path, anchor_cache=None):
    """Yield (line number, target, reason) for each relative link of ``path`` that does not resolve."""
    anchor_cache = {} if anchor_cache is None else anchor_cache
    with open(path, encoding="utf-8") as f:
        text = f.read()
    folder = os.path.dirname(os.path.abspath(path))
    for number, line in _prose_lines(text):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if target.lower().startswith(EXTERNAL):
                continue
            file_part, _, anchor = target.partition("#")
            linked = os.path.normpath(os.path.join(folder, file_part)) if file_part else \
                os.path.abspath(path)
            if not os.path.exists(linked):
                yield number, target, "no such file"
                continue
            if not anchor:
                continue
            if not linked.endswith(".md"):
                yield number, target, "an anchor into a file that is not Markdown"
                continue
            if linked not in anchor_cache:
                anchor_cache[linked] = anchors_of(linked)
            if anchor not in anchor_cache[linked]:
                yield number, target, f"no heading with anchor #{anchor} in {os.path.basename(linked)}"


def check(root):
    """All broken links under ``root`` as lines 'file:line: target: reason'."""
    cache = {}
    problems = []
    for path in doc_files(root):
        rel = os.path.relpath(path, root)
        for number, target, reason in broken_links(path, cache):
            problems.append(f"{rel}:{number}: {target}: {reason}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    problems = check(args.root)
    for line in problems:
        print(line)
    print(f"{len(doc_files(args.root))} files checked, {len(problems)} broken link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
