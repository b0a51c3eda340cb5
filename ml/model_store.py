"""Find the model to serve: a folder, an ``.onnx`` file, or the MLflow registry's champion.

``resolve_model()`` always returns a folder holding ``model.onnx`` and ``model_card.json``.
Registry models are downloaded once into ``FADECAST_HOME/models/<name>/v<version>/`` (a cache
keyed by the registered version) and reused. mlflow is imported lazily, only for registry URIs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from data_registry.errors import FadecastError, NotFoundError
from data_registry.home import fadecast_home, mlflow_tracking_uri
from ml.inference import CARD_FILE, MODEL_FILE

__all__ = ["resolve_model", "shipped_model_dir", "REGISTERED_NAME", "CHAMPION_ALIAS",
           "SHIPPED_MODEL_DIR"]

REGISTERED_NAME = "fadecast-forecaster"
CHAMPION_ALIAS = "champion"
#: the production model the repository ships (``make train`` writes it; commit it)
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "production"


def shipped_model_dir() -> Path | None:
    """The shipped production model folder, or None when absent.

    ``FADECAST_SHIPPED_MODEL`` overrides the location (an empty value: no shipped model)."""
    env = os.environ.get("FADECAST_SHIPPED_MODEL")
    folder = SHIPPED_MODEL_DIR if env is None else (Path(env).expanduser() if env else None)
    if folder is None or not ((folder / MODEL_FILE).is_file() and (folder / CARD_FILE).is_file()):
        return None
    return folder.resolve()


def _find(folder: Path, name: str) -> Path | None:
    direct = folder / name
    if direct.is_file():
        return direct
    hits = sorted(folder.rglob(name))
    return hits[0] if hits else None


#: the champion as last resolved: {uri, tracking, name, version, folder, stamp}
POINTER_FILE = "resolved.json"


def _registry_stamp(tracking: str) -> list[int] | None:
    """Size and mtime (ns) of a local SQLite registry and its WAL: any write changes it, so a
    cached alias resolution is reused only while the registry is untouched. None otherwise."""
    if not tracking.startswith("sqlite:///"):
        return None
    db = Path(tracking[len("sqlite:///"):])
    out: list[int] = []
    for p in (db, db.with_name(db.name + "-wal")):
        try:
            st = p.stat()
        except FileNotFoundError:
            out += [0, 0]
            continue
        out += [st.st_size, st.st_mtime_ns]
    return out


def _pointer_path() -> Path:
    return fadecast_home() / "models" / POINTER_FILE


def _cached_resolution(uri: str, tracking: str) -> Path | None:
    """The folder an earlier call resolved ``uri`` to, if the registry has not changed since
    (no mlflow import: a CLI forecast stays fast)."""
    import json

    stamp = _registry_stamp(tracking)
    if stamp is None:
        return None
    try:
        entry = json.loads(_pointer_path().read_text()).get(uri)
    except (OSError, ValueError, AttributeError):
        return None
    if not entry or entry.get("tracking") != tracking or entry.get("stamp") != stamp:
        return None
    if entry.get("missing"):  # the registry had no such model and has not changed since
        raise NotFoundError(**entry["missing"])
    folder = fadecast_home() / entry["folder"]
    if (folder / MODEL_FILE).is_file() and (folder / CARD_FILE).is_file():
        return folder
    return None


def _remember_resolution(uri: str, tracking: str, folder: Path | None,
                         missing: NotFoundError | None = None) -> None:
    """Record what ``uri`` resolved to (a folder, or ``missing``: the not-found error) with
    the registry's stamp."""
    import json

    stamp = _registry_stamp(tracking)
    if stamp is None:
        return
    path = _pointer_path()
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    if folder is not None:
        table[uri] = {"tracking": tracking, "stamp": stamp,
                      "folder": folder.relative_to(fadecast_home()).as_posix()}
    elif missing is not None:
        table[uri] = {"tracking": tracking, "stamp": stamp, "missing": {
            "message": missing.message, "code": missing.code, "column": missing.column,
            "expected": missing.expected, "found": missing.found}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table))
    os.replace(tmp, path)


def _local_artifacts(source: str) -> str:
    """A ``file:`` artifact URI of a home that was moved or copied, pointed at this home's
    ``mlflow/artifacts`` (MLflow stores absolute locations; the home's layout is fixed)."""
    from urllib.parse import unquote, urlparse

    from data_registry.home import mlflow_artifact_root

    if not source.startswith("file:"):
        return source
    path = Path(unquote(urlparse(source).path))
    if path.exists():
        return source
    parts = path.parts
    for i in range(len(parts) - 1):
        if parts[i] == "mlflow" and parts[i + 1] == "artifacts":
            moved = mlflow_artifact_root().joinpath(*parts[i + 2:])
            if moved.exists():
                return moved.as_uri()
    return source


def _from_registry(uri: str, tracking_uri: str | None) -> Path:
    tracking = tracking_uri or mlflow_tracking_uri()
    if uri in ("", "champion"):
        uri = f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}"
    cached = _cached_resolution(uri, tracking)
    if cached is not None:
        return cached
    try:
        folder = _resolve_registry(uri, tracking)
    except NotFoundError as exc:
        if exc.code == "model_not_found":  # no champion yet: remembered until the registry
            try:                           # changes (the shipped model answers meanwhile)
                _remember_resolution(uri, tracking, None, exc)
            except OSError:
                pass
        raise
    try:
        _remember_resolution(uri, tracking, folder)
    except OSError:
        pass  # a read-only home: resolve again next time
    return folder


def _resolve_registry(uri: str, tracking: str) -> Path:
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    ref = uri[len("models:/"):]
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = ref.rsplit("/", 1)
            mv = client.get_model_version(name, version)
    except (MlflowException, ValueError) as exc:
        raise NotFoundError(f"no registered model for {uri} in {tracking}",
                            code="model_not_found", column="model",
                            expected="a registered model version (run `fadecast train` or "
                                     "`make demo` first)", found=uri) from exc
    cache = fadecast_home() / "models" / name / f"v{mv.version}"
    if (cache / MODEL_FILE).is_file() and (cache / CARD_FILE).is_file():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".download-"))
    try:
        # Ask the registry for the artifact location itself: a "models:/" URI would be
        # resolved against MLflow's default registry (./mlflow.db), not this one.
        source = _local_artifacts(client.get_model_version_download_uri(name, mv.version))
        got = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(tmp / "raw"), tracking_uri=tracking))
        onnx_file, card_file = _find(got, MODEL_FILE), _find(got, CARD_FILE)
        if onnx_file is None or card_file is None:
            raise NotFoundError("registered model lacks model.onnx or model_card.json",
                                code="model_incomplete", file=str(got),
                                expected=f"{MODEL_FILE} and {CARD_FILE}",
                                found=str(sorted(p.name for p in got.rglob('*'))[:10]))
        final = tmp / "final"
        final.mkdir()
        shutil.copy2(onnx_file, final / MODEL_FILE)
        shutil.copy2(card_file, final / CARD_FILE)
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(final, cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def resolve_model(uri: str | os.PathLike[str] | None = None, *,
                  tracking_uri: str | None = None) -> Path:
    """A folder with ``model.onnx`` + ``model_card.json`` for ``uri``.

    Parameters
    ----------
    uri:
        ``None`` → the user's own champion (``models:/fadecast-forecaster@champion`` in
        FADECAST_HOME's MLflow registry) when there is one, else the SHIPPED production model
        (:func:`shipped_model_dir`); ``"champion"`` → the champion only;
        ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; a folder; or an ``.onnx`` file with
        ``model_card.json`` beside it.
    tracking_uri:
        Registry to ask (default ``data_registry.home.mlflow_tracking_uri()``).

    Raises
    ------
    NotFoundError
        Nothing at ``uri``, no champion yet, or a card missing beside the ONNX file.
    """
    if uri is None:
        shipped = shipped_model_dir()
        tracking = tracking_uri or mlflow_tracking_uri()
        if shipped is not None and tracking.startswith("sqlite:///") and \
                not Path(tracking[len("sqlite:///"):]).exists():
            return shipped  # no registry at all in this home: no champion (no mlflow import)
        try:
            return _from_registry("", tracking_uri)
        except NotFoundError as exc:
            if shipped is None:
                exc.message = f"{exc.message}; and no shipped model at {SHIPPED_MODEL_DIR}"
                raise
            return shipped
    if str(uri) in ("champion",) or str(uri).startswith("models:/"):
        return _from_registry(str(uri), tracking_uri)
    path = Path(uri).expanduser()
    if path.is_dir():
        for name in (MODEL_FILE, CARD_FILE):
            if not (path / name).is_file():
                raise NotFoundError(f"model folder lacks {name}", code="model_incomplete",
                                    file=str(path / name), column="model",
                                    expected=f"{MODEL_FILE} and {CARD_FILE}", found="nothing")
        return path.resolve()
    if path.suffix == ".onnx" and path.is_file():
        if not (path.parent / CARD_FILE).is_file():
            raise NotFoundError("no model card beside the ONNX file", code="model_card_missing",
                                file=str(path.parent / CARD_FILE), column="model",
                                expected=f"{CARD_FILE} beside {path.name}", found="nothing")
        if path.name == MODEL_FILE:
            return path.parent.resolve()
        # an .onnx under another name: present it under the standard names via a cache folder
        cache = fadecast_home() / "models" / "files" / path.stem
        cache.mkdir(parents=True, exist_ok=True)
        for src, dst in ((path, MODEL_FILE), (path.parent / CARD_FILE, CARD_FILE)):
            tmp = cache / f".{dst}.tmp"
            shutil.copy2(src, tmp)
            os.replace(tmp, cache / dst)
        return cache
    raise FadecastError("model not found", code="model_not_found", file=str(path),
                        column="model", expected="a model folder, an .onnx file, 'champion' "
                                                 "or models:/NAME@ALIAS", found=str(uri))
