"""A version's metadata.json decides where a download writes: its names are checked (F1).

Anyone who can write to the bucket can rewrite metadata.json, checksums included, so these
tests forge it the way an attacker would: the bad name's object is stored and its sha256 is
right, so only the name check can refuse it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopline.registry import CorruptModelError, ModelRegistry, RegistryError
from loopline.registry.registry import UnsafeArtifactError
from loopline.storage.objects import sha256_hex
from support.judged_versions import placeholder_artifacts

BUCKET = "loopline"
BASE = "models/fraud/versions/000001/"
PAYLOAD = b"#!/bin/sh\necho owned\n"


def register(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = placeholder_artifacts(tmp_path, "artifacts")
    registry.register("fraud", folder, metrics={}, input_schema=[])


def forge(registry: ModelRegistry, name: str) -> None:
    """Add artifact `name` to version 1, with its object stored and its checksum right."""
    registry.store.put(BUCKET, BASE + name, PAYLOAD, "application/octet-stream")
    metadata = json.loads(registry.store.get(BUCKET, BASE + "metadata.json"))
    metadata["artifacts"][name] = sha256_hex(PAYLOAD)
    registry.store.put(BUCKET, BASE + "metadata.json", json.dumps(metadata).encode(), "x")


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escaped.txt", "'.' or '..' segment"),
        ("saved_model/../../escaped.txt", "'.' or '..' segment"),
        ("{root}/escaped.txt", "absolute path"),
        ("saved_model\\..\\..\\escaped.txt", "backslash"),
        ("saved_model//escaped.txt", "empty segment"),
        ("run.sh", "not a file Loopline writes"),
        (".claim", "not a file Loopline writes"),
    ],
)
def test_a_forged_artifact_name_is_refused_and_nothing_is_written(
    registry, tmp_path, name: str, reason: str
) -> None:
    register(registry, tmp_path)
    name = name.format(root=tmp_path)  # an absolute path the old code would have written
    forge(registry, name)
    before = files_under(tmp_path)
    destination = tmp_path / "deep" / "out"

    with pytest.raises(UnsafeArtifactError) as refused:
        registry.download("fraud", 1, destination)

    message = str(refused.value)
    assert f"fraud version 1: artifact {name!r} is refused" in message and reason in message
    assert not destination.exists()
    assert files_under(tmp_path) == before  # nothing inside, beside or above it either


def test_a_symlink_in_the_destination_cannot_lead_a_download_out(registry, tmp_path) -> None:
    register(registry, tmp_path)
    destination, outside = tmp_path / "out", tmp_path / "outside"
    destination.mkdir()
    outside.mkdir()
    (destination / "saved_model").symlink_to(outside)

    with pytest.raises(UnsafeArtifactError, match=r"saved_model/saved_model.pb.*resolves outside"):
        registry.download("fraud", 1, destination)
    assert list(outside.iterdir()) == []


def test_a_corrupt_file_leaves_the_destination_untouched(registry, tmp_path) -> None:
    register(registry, tmp_path)
    # The last file fetched is the corrupt one: every file before it was already verified.
    key = BASE + "saved_model/variables/variables.index"
    registry.store.put(BUCKET, key, b"flipped bits", "application/octet-stream")
    parent = tmp_path / "parent"
    parent.mkdir()

    with pytest.raises(CorruptModelError, match=r"variables\.index is corrupt"):
        registry.download("fraud", 1, parent / "out")
    assert list(parent.iterdir()) == []  # no destination, no staging folder left behind


def test_a_download_into_an_existing_folder_keeps_its_other_files(registry, tmp_path) -> None:
    register(registry, tmp_path)
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "notes.txt").write_text("mine")

    registry.download("fraud", 1, destination)
    assert files_under(destination) == {
        "notes.txt",
        "model.keras",
        "saved_model/saved_model.pb",
        "saved_model/variables/variables.index",
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_register_refuses_a_file_loopline_does_not_write_before_claiming(
    registry, tmp_path
) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "model.keras").write_text("weights")
    (folder / "run.sh").write_text("echo owned")

    with pytest.raises(RegistryError, match=r"'run.sh' is refused because it is not a file"):
        registry.register("fraud", folder, metrics={}, input_schema=[])
    assert list(registry.store.list_keys(BUCKET, "models/")) == []  # no version number taken
