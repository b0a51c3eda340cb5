"""Where fadecast keeps its data: the ONE place ``FADECAST_HOME`` is read.

Layout under the home folder::

    raw/<sha256[:2]>/<sha256>        raw files, verbatim, content-addressed
    tables/...                       canonical Parquet tables, partitioned by cell
    catalog.sqlite                   the default SQLAlchemy catalog
    mlflow/mlflow.db, mlflow/artifacts   local MLflow tracking store and artifacts
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FADECAST_HOME"
DEFAULT_HOME = "fadecast-data"


def fadecast_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The registry folder: ``path`` if given, else ``$FADECAST_HOME``, else ``./fadecast-data``.

    The folder is created if missing. Returned absolute.
    """
    chosen = path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_HOME
    home = Path(chosen).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def catalog_url(home: Path | None = None) -> str:
    """SQLAlchemy URL of the catalog: ``$FADECAST_CATALOG_URL`` or SQLite inside the home."""
    url = os.environ.get("FADECAST_CATALOG_URL")
    if url:
        return url
    return f"sqlite:///{(home or fadecast_home()) / 'catalog.sqlite'}"


def mlflow_tracking_uri(home: Path | None = None) -> str:
    """Local MLflow tracking URI: ``$MLFLOW_TRACKING_URI`` or SQLite inside the home."""
    url = os.environ.get("MLFLOW_TRACKING_URI")
    if url:
        return url
    folder = (home or fadecast_home()) / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def mlflow_artifact_root(home: Path | None = None) -> Path:
    """Folder for MLflow artifacts of the local store."""
    folder = (home or fadecast_home()) / "mlflow" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repository root, or ``$FADECAST_SHARED_DATA``; None if absent."""
    env = os.environ.get("FADECAST_SHARED_DATA")
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    repo_root = Path(__file__).resolve().parent.parent
    p = repo_root.parent / "shared" / "data"
    return p if p.is_dir() else None
