"""The docs' relative links and anchors resolve (tools/dev/check_doc_links.py), and the checker
itself notices a missing file, a missing heading and a repeated heading's suffix."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKER = os.path.join(REPO, "tools", "dev", "check_doc_links.py")
sys.path.insert(0, os.path.dirname(CHECKER))

import check_doc_links  # noqa: E402  (a stand-alone script, imported from its folder)


def test_repository_docs_have_no_broken_links():
    assert check_doc_links.check(REPO) == []


def test_checker_reports_missing_files_and_anchors(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text(
        "# Deploy\n\n## 6. Speed (benchmarks/bench_infer.py)\n\n## Notes\n\n## Notes\n",
        encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "[ok](docs/deploy.md#6-speed-benchmarksbench_inferpy) [ok2](docs/deploy.md#notes-1)\n"
        "[bad anchor](docs/deploy.md#6-speed)\n"
        "[bad file](docs/missing.md)\n"
        "`[in code](docs/nothing.md)` [web](https://example.com/x.md#y)\n"
        "```\n[in a fence](docs/nothing.md)\n```\n",
        encoding="utf-8")
    problems = check_doc_links.check(str(tmp_path))
    assert problems == [
        "README.md:2: docs/deploy.md#6-speed: no heading with anchor #6-speed in deploy.md",
        "README.md:3: docs/missing.md: no such file",
    ]
    # The command line says the same and fails.
    run = subprocess.run([sys.executable, CHECKER, "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "2 broken link(s)" in run.stdout
