"""The code a run is compared with: a commit exported next to the working tree.

`bench.run --baseline REF` measures every part twice, once against REF and once against the
working tree, with the same harness, venv, databases and fakes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.processes import ROOT, Code

# The code before issue 15's throughput work began (the parent of its first commit, "an idle
# service reads instead of writing"): what issue 15 asks the figures to be compared with.
DEFAULT_BASELINE = "16218b95c10418377a74a0bad0b24ff23303e447"


def resolve(ref: str) -> str:
    """The full commit id of `ref` (raises CalledProcessError for an unknown one)."""
    return subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def export(ref: str, into: Path) -> Code:
    """`git archive REF | tar -x` into `into`/baseline; its bench/ is this harness.

    The harness is the working tree's (a symlink replaces the exported bench/): the same
    load, fakes and measurements for both trees, only `receiver/` and its migrations differ.
    The bench modules a baseline process runs (`python -m bench.reconcile_sweep`) import
    `receiver` from the exported tree.
    """
    commit = resolve(ref)
    tree = into / "baseline"
    tree.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")
    shutil.rmtree(tree / "bench", ignore_errors=True)
    (tree / "bench").symlink_to(ROOT / "bench", target_is_directory=True)
    return Code(name=f"baseline {commit[:10]}", root=tree)
