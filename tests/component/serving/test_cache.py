"""The per-process model cache leaves no folder behind (F17): a replica rolls through version
after version, and each used to leave its download in the temp folder for good.

The registry and S3 are real; loading is replaced by reading the file back, since the unit
tier imports no TensorFlow (tests/integration/serving loads a real Keras model).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from loopline.registry import CorruptModelError, ModelRegistry
from loopline.serving import cache
from loopline.storage.objects import ObjectStore

BUCKET = "loopline"


@pytest.fixture
def registry(s3, tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(ObjectStore(s3.client()), BUCKET)
    registry.store.ensure_bucket(BUCKET)
    for version in (1, 2):
        folder = tmp_path / f"v{version}"
        (folder / "saved_model").mkdir(parents=True)
        (folder / "model.keras").write_text(f"weights of v{version}")
        (folder / "saved_model" / "saved_model.pb").write_text("graph")
        registry.register("fraud", folder, metrics={}, input_schema=[])
    return registry


def read_back(folder: Path | str) -> str:
    """Stands in for loading: the model file's text, read while the folder exists."""
    return (Path(folder) / "model.keras").read_text()


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch) -> Path:
    """The folder tempfile creates folders in, and an empty cache, for this test only."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setattr(cache, "_SERVED", {})
    monkeypatch.setattr(
        cache, "load_model", lambda folder: (Path(folder) / "model.keras").read_text()
    )
    monkeypatch.setattr(cache, "compiled", lambda model: f"compiled {model}")
    return root


def test_serving_versions_leaves_no_folder_on_disk(registry, temp_root: Path) -> None:
    calls: list[int] = []

    def factory() -> ModelRegistry:
        calls.append(1)
        return registry

    assert cache.served_model("fraud", 1, factory) == "compiled weights of v1"
    assert cache.served_model("fraud", 2, factory) == "compiled weights of v2"
    assert cache.served_model("fraud", 1, factory) == "compiled weights of v1"  # cached
    assert len(calls) == 2
    assert list(temp_root.iterdir()) == []


def test_a_failed_download_leaves_no_folder_either(registry, temp_root: Path) -> None:
    key = "models/fraud/versions/000001/model.keras"
    registry.store.put(BUCKET, key, b"flipped bits", "application/octet-stream")
    with pytest.raises(CorruptModelError):
        cache.served_model("fraud", 1, lambda: registry)
    assert list(temp_root.iterdir()) == []
    assert ("fraud", 1) not in cache._SERVED


def test_a_failed_load_leaves_no_folder(registry, temp_root: Path, monkeypatch) -> None:
    def not_a_model(folder: Any) -> Any:
        raise ValueError("not a Keras file")

    monkeypatch.setattr(cache, "load_model", not_a_model)
    with pytest.raises(ValueError, match="not a Keras file"):
        cache.served_model("fraud", 2, lambda: registry)
    assert list(temp_root.iterdir()) == []
