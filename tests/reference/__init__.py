"""Earlier implementations, kept only as references for equivalence tests.

``reference.features_v1`` is ``ml.features`` as it was at commit 309665f (before the issue-13
speed work). It is not a copy in the tree: on first import its files are read from this
repository's git history (``git show COMMIT:ml/features/NAME.py``), their ``ml.features``
imports pointed at ``reference.features_v1``, and written to a cache folder that joins this
package's search path. A checkout without that history (a tarball, a shallow clone) raises
:class:`ReferenceUnavailable` naming what is missing; the tests skip with that reason.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

#: the last commit of the per-cycle feature code before the numba speed work
FEATURES_V1_COMMIT = "309665f2a5fe8b1b334b1fc573c5623e5aff7036"
_ROOT = Path(__file__).resolve().parents[2]


class ReferenceUnavailable(ImportError):
    """The reference implementation cannot be read from this checkout's git history."""


def _git(*args: str) -> bytes:
    try:
        out = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True,
                             check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReferenceUnavailable(f"git is not usable here ({exc})") from exc
    if out.returncode != 0:
        raise ReferenceUnavailable(
            f"git {' '.join(args)} failed in {_ROOT}: {out.stderr.decode(errors='replace').strip()}"
            f" (the reference needs the repository's history, commit {FEATURES_V1_COMMIT[:7]})")
    return out.stdout


def materialize_features_v1() -> Path:
    """Folder holding package ``features_v1`` (cached per commit); raises ReferenceUnavailable."""
    cache = Path(tempfile.gettempdir()) / f"fadecast-reference-{FEATURES_V1_COMMIT[:12]}"
    package = cache / "features_v1"
    if (package / "__init__.py").is_file():
        return cache
    names = [line.rsplit("/", 1)[-1] for line in _git(
        "ls-tree", "--name-only", FEATURES_V1_COMMIT, "ml/features/").decode().split()]
    staging = Path(tempfile.mkdtemp(prefix="fadecast-reference-"))
    try:
        (staging / "features_v1").mkdir()
        for name in names:
            if not name.endswith(".py") or name == "commands.py":  # the CLI is not reference
                continue
            text = _git("show", f"{FEATURES_V1_COMMIT}:ml/features/{name}").decode()
            text = text.replace("ml.features", "reference.features_v1")
            (staging / "features_v1" / name).write_text(text, encoding="utf-8")
        digest = hashlib.sha256(b"".join(
            p.read_bytes() for p in sorted((staging / "features_v1").iterdir()))).hexdigest()
        (staging / "features_v1" / "SOURCE").write_text(
            f"{FEATURES_V1_COMMIT} {digest}\n", encoding="utf-8")
        try:
            staging.rename(cache)  # atomic: a concurrent run either wins or finds it complete
        except OSError:
            if not (package / "__init__.py").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


try:
    __path__.append(str(materialize_features_v1()))  # noqa: F821 - the package's own path
    AVAILABLE, WHY_UNAVAILABLE = True, ""
except ReferenceUnavailable as _exc:
    AVAILABLE, WHY_UNAVAILABLE = False, str(_exc)
