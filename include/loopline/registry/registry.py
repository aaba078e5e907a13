"""A model registry on S3 alone: versions with lineage, and aliases moved by conditional writes.

Layout under ``s3://<bucket>/<prefix><model>/``::

    versions/000007/.claim              create-only: the number is taken (by which run)
    versions/000007/model.keras         the artifacts, any files (a SavedModel directory too)
    versions/000007/metadata.json       create-only, written last: the version exists from here
    aliases/champion/00000003.json      the alias's third move; create-only, never rewritten

An alias is its append-only log of moves: the newest entry says where it points. Moving it
creates entry n+1 with ``If-None-Match: *``, so of two concurrent moves from entry n exactly
one wins and the other gets ``AliasConflict`` (compare-and-swap): a promotion decided against
champion v3 can only land while v3 is still champion. The history can never be rewritten,
because each entry is written once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopline.registry import layout
from loopline.registry.artifacts import artifact_problem, target_problem
from loopline.registry.importance import FeatureImportance
from loopline.registry.layout import CHALLENGER as CHALLENGER  # re-exported
from loopline.registry.layout import CHAMPION, MODELS_PREFIX
from loopline.storage.objects import (
    CreateOnlyUnsupportedError,
    ObjectConflictError,
    ObjectStore,
    sha256_hex,
)

log = logging.getLogger(__name__)

METADATA = "metadata.json"
CLAIM = ".claim"


class RegistryError(Exception):
    pass


class AliasConflict(RegistryError):
    """Someone else moved the alias first; re-read it and decide again."""


class AliasNotSet(RegistryError):
    """An alias that was never set (a fresh project has no champion yet)."""


class CorruptModelError(RegistryError):
    """A stored artifact does not match the checksum recorded when it was registered."""


class UnsafeArtifactError(CorruptModelError):
    """A version's metadata names an artifact a download must not write (``../x``, ``/x``)."""


class ModelVersion(BaseModel):
    """The metadata record of one registered version: what it is and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = Field(ge=1)
    created_at: datetime
    metrics: dict[str, float]
    input_schema: list[dict[str, str]]  # [{"name": ..., "type": ...}] the model takes
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    snapshot: dict[str, Any] = Field(default_factory=dict)  # training data: objects, sha256s
    code_version: str = "unknown"
    lineage: dict[str, str] = Field(default_factory=dict)  # dag_id, run_id, task_id...
    parent_champion: int | None = None
    artifacts: dict[str, str]  # path relative to the version -> sha256
    size_bytes: int = Field(ge=0)
    training: dict[str, Any] = Field(default_factory=dict)  # device, samples/s, epochs...
    # Global feature importance on its holdout; None: registered before it was computed.
    importance: FeatureImportance | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of the version's files (their sha256s): two registries (a wiped bucket,
        another project on the same Spark server) can each hold a "v1" of one name, but
        not with the same files."""
        listing = "\n".join(f"{path} {digest}" for path, digest in sorted(self.artifacts.items()))
        return hashlib.sha256(listing.encode()).hexdigest()[:16]


class AliasMove(BaseModel):
    """One entry of an alias's history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sequence: int = Field(ge=1)
    version: int = Field(ge=1)
    previous: int | None
    action: Literal["promote", "rollback", "set"]
    reason: str
    at: datetime
    by: str  # who or what moved it: "airflow:<dag>/<run>", "cli:<user>"


class ModelRegistry:
    def __init__(self, store: ObjectStore, bucket: str, prefix: str = MODELS_PREFIX) -> None:
        self.store, self.bucket, self.prefix = store, bucket, prefix

    # -- versions ------------------------------------------------------------------------

    def register(self, name: str, artifacts_dir: Path, **record: Any) -> ModelVersion:
        """Upload every file under `artifacts_dir` as the next version of `name`.

        The version number is claimed first (create-only), the files uploaded, and the
        metadata written last: a crash before that leaves an unused number, never a version
        with missing files.
        """
        files = sorted(p for p in artifacts_dir.rglob("*") if p.is_file())
        if not files:
            raise RegistryError(f"{artifacts_dir} holds no files to register")
        for path in files:
            relative = path.relative_to(artifacts_dir).as_posix()
            if problem := artifact_problem(relative):
                raise RegistryError(
                    f"cannot register {artifacts_dir} as {name}: {relative!r} is refused "
                    f"because {problem}"
                )
        self._require_create_only()
        version = self._claim_version(name, record.get("lineage", {}))
        base = self.version_prefix(name, version)
        checksums: dict[str, str] = {}
        for path in files:
            data = path.read_bytes()
            relative = path.relative_to(artifacts_dir).as_posix()
            self.store.put_new(self.bucket, base + relative, data)
            checksums[relative] = sha256_hex(data)
        metadata = ModelVersion(
            name=name,
            version=version,
            created_at=datetime.now(UTC),
            artifacts=checksums,
            size_bytes=sum(p.stat().st_size for p in files),
            **record,
        )
        body = metadata.model_dump_json(indent=2).encode()
        self.store.put_new(self.bucket, base + METADATA, body, content_type="application/json")
        log.info("registered %s version %d (%d files)", name, version, len(files))
        return metadata

    def versions(self, name: str, newest: int | None = None) -> list[ModelVersion]:
        """Every registered version, oldest first; with `newest`, only that many of the
        latest (one read each: a registry of hundreds of versions lists, then reads a page)."""
        numbers = sorted(self._version_numbers(name, with_metadata=True))
        if newest is not None:
            numbers = numbers[-newest:] if newest > 0 else []
        return [self.get(name, number) for number in numbers]

    def get(self, name: str, version: int) -> ModelVersion:
        key = self.version_prefix(name, version) + METADATA
        if self.store.head(self.bucket, key) is None:
            raise RegistryError(f"{name} has no version {version} (no s3://{self.bucket}/{key})")
        raw = self.store.get(self.bucket, key)
        try:
            return ModelVersion.model_validate_json(raw)
        except ValidationError as exc:
            message = f"s3://{self.bucket}/{key} is not a version record: {exc}"
            raise CorruptModelError(message) from exc

    def download(self, name: str, version: int, destination: Path) -> ModelVersion:
        """Fetch a version's files into `destination`, each checked against its sha256.

        Every name is checked before anything is fetched, and the files are fetched into a
        staging folder beside `destination`, moved into place only once all of them are
        verified: a bad name or a corrupt file leaves `destination` as it was.
        """
        record = self.get(name, version)
        for relative in record.artifacts:
            if problem := artifact_problem(relative) or target_problem(relative, destination):
                raise UnsafeArtifactError(
                    f"{name} version {version}: artifact {relative!r} is refused because "
                    f"{problem}; nothing was written to {destination}"
                )
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
        try:
            self._fetch_verified(record, staging)
            _move_into(staging, destination, sorted(record.artifacts))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return record

    def _fetch_verified(self, record: ModelVersion, folder: Path) -> None:
        base = self.version_prefix(record.name, record.version)
        for relative, expected in sorted(record.artifacts.items()):
            data = self.store.get(self.bucket, base + relative)
            if sha256_hex(data) != expected:
                raise CorruptModelError(
                    f"{record.name} version {record.version}: {relative} is corrupt (sha256 "
                    f"{sha256_hex(data)[:12]}..., registered {expected[:12]}...); "
                    f"refusing to use it"
                )
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    # -- aliases -------------------------------------------------------------------------

    def history(self, name: str, alias: str) -> list[AliasMove]:
        prefix = self._alias_prefix(name, alias)
        keys = sorted(k for k in self._keys(prefix) if k.endswith(".json"))
        return [self._alias_move(key) for key in keys]

    def _alias_move(self, key: str) -> AliasMove:
        try:
            return AliasMove.model_validate_json(self.store.get(self.bucket, key))
        except ValidationError as exc:
            raise CorruptModelError(
                f"s3://{self.bucket}/{key} is not an alias move: {exc}"
            ) from exc

    def alias(self, name: str, alias: str) -> int | None:
        """The version `alias` points at, or None when it was never set."""
        moves = self.history(name, alias)
        return moves[-1].version if moves else None

    def resolve(self, name: str, which: str | int) -> int:
        """The version number `which` names: a number (which must be registered) or an alias
        (champion, challenger), which must be set. Raises RegistryError naming what is missing."""
        text = str(which).strip()
        if text.isdigit():
            self.get(name, int(text))  # an unknown version is an error, never a silent skip
            return int(text)
        version = self.alias(name, text)
        if version is None:
            raise AliasNotSet(f"{name}@{text} is not set")
        return version

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected: int | None,
        action: Literal["promote", "rollback", "set"],
        reason: str,
        by: str,
    ) -> AliasMove:
        """Point `alias` at `version`, if it still points at `expected` (None: unset)."""
        self.get(name, version)  # only a registered version can be pointed at
        self._require_create_only()  # the compare-and-swap below relies on it
        moves = self.history(name, alias)
        current = moves[-1] if moves else None
        if (current.version if current else None) != expected:
            raise AliasConflict(
                f"{name}@{alias} points at {current.version if current else None}, "
                f"not {expected}: moved by {current.by if current else '-'}"
            )
        move = AliasMove(
            sequence=(current.sequence if current else 0) + 1,
            version=version,
            previous=current.version if current else None,
            action=action,
            reason=reason,
            at=datetime.now(UTC),
            by=by,
        )
        key = f"{self._alias_prefix(name, alias)}{move.sequence:08d}.json"
        body = move.model_dump_json().encode()
        try:
            self.store.put_new(self.bucket, key, body, content_type="application/json")
        except ObjectConflictError as exc:
            raise AliasConflict(f"{name}@{alias} was moved concurrently; re-read it") from exc
        # S3 makes the create-only write atomic; a server that checks then writes without a
        # lock (moto) can let a racing writer replace it. Reading it back catches that case.
        if self.store.get(self.bucket, key) != body:
            raise AliasConflict(f"{name}@{alias} was moved concurrently; re-read it")
        log.info("%s@%s: %s -> %s (%s: %s)", name, alias, move.previous, version, action, reason)
        return move

    def rollback_target(self, name: str, alias: str = CHAMPION) -> int | None:
        """The version a rollback restores: promotions stack up, each rollback pops one."""
        stack: list[int] = []
        for move in self.history(name, alias):
            if move.action == "rollback":
                stack.pop()
            else:
                stack.append(move.version)
        return stack[-2] if len(stack) >= 2 else None

    def last_move_by(self, name: str, alias: str, by: str) -> AliasMove | None:
        """The alias's newest move if `by` made it: a retry of the same caller must not move
        the alias twice (a second rollback would walk back one promotion too many)."""
        moves = self.history(name, alias)
        return moves[-1] if moves and moves[-1].by == by else None

    def rollback(self, name: str, *, reason: str, by: str, alias: str = CHAMPION) -> AliasMove:
        """Restore the version before the last promotion (each call pops one more)."""
        current, target = self.alias(name, alias), self.rollback_target(name, alias)
        if target is None:
            raise RegistryError(f"{name}@{alias} has no earlier version to roll back to")
        return self.move_alias(
            name, alias, target, expected=current, action="rollback", reason=reason, by=by
        )

    # -- layout --------------------------------------------------------------------------

    def _claim_version(self, name: str, lineage: dict[str, str]) -> int:
        claim = json.dumps({"id": uuid.uuid4().hex, **lineage}).encode()
        number = max(self._version_numbers(name, with_metadata=False), default=0) + 1
        while True:
            key = self.version_prefix(name, number) + CLAIM
            try:
                self.store.put_new(self.bucket, key, claim)
            except ObjectConflictError:  # another run took this number first
                number += 1
                continue
            return number

    def _version_numbers(self, name: str, *, with_metadata: bool) -> Iterator[int]:
        prefix = f"{layout.model_prefix(name, self.prefix)}versions/"
        wanted = METADATA if with_metadata else CLAIM
        for key in self._keys(prefix):
            number, _, rest = key[len(prefix) :].partition("/")
            if rest == wanted and number.isdigit():
                yield int(number)

    def _require_create_only(self) -> None:
        """Versions and alias moves are create-only writes: refuse a server that overwrites."""
        try:
            self.store.verify_create_only(self.bucket)
        except CreateOnlyUnsupportedError as exc:
            raise RegistryError(str(exc)) from exc

    def _keys(self, prefix: str) -> list[str]:
        """The keys under `prefix`; a missing bucket is a RegistryError that names it."""
        try:
            return list(self.store.list_keys(self.bucket, prefix))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
            raise RegistryError(
                f"the bucket {self.bucket} does not exist at {self.store.endpoint}: "
                f"no models can be read from it (was it deleted, or is this the wrong "
                f"endpoint?)"
            ) from exc

    def version_prefix(self, name: str, version: int) -> str:
        """Where a version's files live; things recorded about it later go here too."""
        return layout.version_prefix(name, version, self.prefix)

    def _alias_prefix(self, name: str, alias: str) -> str:
        return layout.alias_prefix(name, alias, self.prefix)


def _move_into(staging: Path, destination: Path, names: list[str]) -> None:
    """Put the verified files of `staging` at `destination`: one rename when it is new."""
    if not destination.exists():
        os.replace(staging, destination)
        return
    for relative in names:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, target)
