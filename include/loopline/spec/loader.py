"""Load pipeline specs from YAML and report every problem with its file, field and line."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from loopline.spec.sections import FieldPath, PipelineSpec, Problem, SpecProblems

# In this order of precedence: of two files of one pipeline, its tasks read the first.
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SCHEMA_KEY = "$schema"  # an editor's pointer to the spec's JSON Schema; not part of the spec

# Bounds on what loading one spec may cost, so that a malformed file fails as that spec's own
# error, in milliseconds, instead of taking the DAG processor down with every pipeline's DAGs.
# A real spec is a few KiB, about 5 levels deep, with a few hundred nodes.
MAX_SPEC_BYTES = 1024 * 1024
MAX_SPEC_DEPTH = 32
MAX_SPEC_NODES = 100_000


class SpecParseError(Exception):
    """A spec file that cannot be parsed, or is past one of the bounds above; the message
    says why, and where when it can."""


class SpecError(Exception):
    """A spec file that cannot be used, with every problem found in it."""

    def __init__(self, path: Path, problems: list[Problem], lines: dict[FieldPath, int]) -> None:
        self.path = path
        self.problems = problems
        self.lines = lines
        super().__init__(self.render())

    @classmethod
    def located(cls, path: Path, problems: list[Problem]) -> SpecError:
        """An error about a spec that loaded, located by the lines of its file."""
        try:
            _, lines = _parse_yaml(_read_text(Path(path)))
        except (OSError, ValueError, yaml.YAMLError, SpecParseError):
            lines = {}  # it changed since it loaded: the problems still name their fields
        return cls(Path(path), problems, lines)

    def render(self) -> str:
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in {self.path}"
        return "\n".join([header, *(f"  {self._located(p)}" for p in self.problems)])

    def _located(self, problem: Problem) -> str:
        line = _line_for(problem.path, self.lines)
        where = f"{problem.dotted_path} (line {line})" if line else problem.dotted_path
        return f"{where}: {problem.message}"


class SpecChangedError(Exception):
    """The spec file is not the one a DAG was planned from: a task refuses to run one DAG run
    on two versions of its pipeline."""


def spec_sha256(path: Path | str) -> str:
    """The sha256 of a spec file's bytes: the version of the spec a plan was made from."""
    return hashlib.sha256(_read_bytes(Path(path))).hexdigest()


def load_spec(path: Path | str, *, expect_sha256: str | None = None) -> PipelineSpec:
    """Parse and validate one spec file; raise SpecError naming every problem at once.
    `expect_sha256`: the version planned; a file changed since raises SpecChangedError."""
    return load_spec_version(path, expect_sha256=expect_sha256)[0]


def load_spec_version(
    path: Path | str, *, expect_sha256: str | None = None
) -> tuple[PipelineSpec, str]:
    """`load_spec`, with the sha256 of the very bytes it parsed (one read: a record naming
    the spec's version names the one that ran, even if the file changes just after)."""
    path = Path(path)
    data = _read_file(path)
    found = hashlib.sha256(data).hexdigest()
    if expect_sha256 and found != expect_sha256:
        raise SpecChangedError(
            f"{path} changed after its DAGs were planned (planned sha256 {expect_sha256[:12]}, "
            f"now {found[:12]}): this run refuses to mix two versions of the pipeline. The DAG "
            "processor re-plans it within its parse interval; trigger the run again then"
        )
    document, lines = _read_document(path, data)
    if not isinstance(document, dict):
        got = type(document).__name__ if document is not None else "an empty file"
        raise SpecError(path, [Problem((), f"expected a mapping of sections, got {got}")], {})
    document.pop(SCHEMA_KEY, None)
    problems = _validate(document)
    if not problems and document.get("name") != path.stem:
        problems = [
            Problem(
                ("name",),
                f"{document.get('name')!r} must match the file name "
                f"{path.stem!r}, so that each pipeline has one file",
            )
        ]
    if problems:
        raise SpecError(path, problems, lines)
    return PipelineSpec.model_validate(document), found


def _read_file(path: Path) -> bytes:
    """The file's bytes, or a SpecError naming the file and why it cannot be read."""
    try:
        return _read_bytes(path)
    except OSError as exc:
        raise _unusable(path, f"cannot read the file: {exc}") from exc
    except SpecParseError as exc:
        raise _unusable(path, str(exc)) from exc


def _read_document(path: Path, data: bytes) -> tuple[Any, dict[FieldPath, int]]:
    """The parsed file and the line of every key path; a SpecError naming the file and the
    reason when it is not text, not valid YAML or JSON, or is past a bound above."""
    try:
        text = data.decode("utf-8")
        if path.suffix == ".json":
            _check_json(text)  # JSON's own rules first; the YAML parse gives the lines
        return _parse_yaml(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise _unusable(path, f"cannot read the file: {exc}") from exc
    except SpecParseError as exc:
        raise _unusable(path, str(exc)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise _unusable(path, f"not valid YAML{where}: {reason}") from exc
    except ValueError as exc:  # a value no constructor can build: a 5,000-digit int, month 13
        raise _unusable(path, f"not valid YAML: {exc}") from exc


def _unusable(path: Path, reason: str) -> SpecError:
    return SpecError(path, [Problem((), reason)], {})


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refused unread past MAX_SPEC_BYTES (a stat could race a writer)."""
    with path.open("rb") as file:
        data = file.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecParseError(f"the file is larger than {MAX_SPEC_BYTES} bytes")
    return data


def _read_text(path: Path) -> str:
    return _read_bytes(path).decode("utf-8")


def _check_json(text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"at line {exc.lineno}, column {exc.colno}"
        raise SpecParseError(f"not valid JSON {where}: {exc.msg}") from exc
    except RecursionError as exc:  # json's C scanner stops near 1,000 levels
        raise SpecParseError(f"nesting deeper than {MAX_SPEC_DEPTH} levels") from exc
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise SpecParseError(f"not valid JSON: {exc}") from exc


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, for editors to check a spec while it is typed."""
    schema = PipelineSpec.model_json_schema()
    schema["properties"] = {SCHEMA_KEY: {"type": "string"}, **schema["properties"]}
    schema["title"] = "Loopline pipeline spec"
    return schema


def spec_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"pipeline spec folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())


def _validate(document: dict[str, Any]) -> list[Problem]:
    try:
        PipelineSpec.model_validate(document)
    except SpecProblems as exc:
        return exc.problems
    except ValidationError as exc:
        return [_problem_from_pydantic(error) for error in exc.errors()]
    return []


def _problem_from_pydantic(error: Any) -> Problem:
    path: FieldPath = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(path, _unknown_field_message(path))
    if kind == "missing":
        return Problem(path, "is required but missing")
    message = error["msg"]
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
        return Problem(path, message)
    return Problem(path, f"got {_show(error.get('input'))}, expected {_lowercase(message)}")


def _unknown_field_message(path: FieldPath) -> str:
    name = str(path[-1])
    allowed = _allowed_fields(path[:-1])
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
    return f"unknown field {name!r}{hint}"


def _allowed_fields(parent: FieldPath) -> list[str]:
    """The field names of the model found at `parent`, following the spec's nesting."""
    model: type[BaseModel] | None = PipelineSpec
    for part in parent:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field else None
    return sorted(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return repr(value)


def _lowercase(message: str) -> str:
    message = message.removeprefix("Input should be ").removeprefix("Input ")
    return message[:1].lower() + message[1:]


# libyaml's C parser when present: ~10x faster than the pure-Python one at DAG-parse time.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> tuple[Any, dict[FieldPath, int]]:
    """The document and the line of every key path, from one parse once bounds are checked."""
    _check_structure(text)
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return document, _line_numbers(node)


_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_structure(text: str) -> None:
    """Refuse nesting deeper than MAX_SPEC_DEPTH, more than MAX_SPEC_NODES nodes once aliases
    are expanded, and an alias inside its own anchor, from the parser's flat event stream and
    before anything recursive sees the document: composing a 1 MB `[[[…` overflows the C stack
    (the interpreter crashes), `_line_numbers` and pydantic walk every expansion of an alias
    (a 350-byte bomb took 20 s), and a self-referencing alias recurses without end."""
    budget = _NodeBudget()
    for event in yaml.parse(text, Loader=_SafeLoader):
        budget.count(event)


@dataclass
class _NodeBudget:
    """A document's depth and node count, with each alias counted as the nodes it repeats."""

    open: list[tuple[str | None, int]] = field(default_factory=list)  # anchor, nodes before
    sizes: dict[str, int] = field(default_factory=dict)  # each anchor's expanded node count
    nodes: int = 0
    aliased: bool = False

    def count(self, event: yaml.Event) -> None:
        line = event.start_mark.line + 1
        if isinstance(event, _OPENS):
            if len(self.open) == MAX_SPEC_DEPTH:
                raise SpecParseError(f"nesting deeper than {MAX_SPEC_DEPTH} levels at line {line}")
            self.open.append((event.anchor, self.nodes))
            self.nodes += 1
        elif isinstance(event, _CLOSES):
            anchor, before = self.open.pop()
            if anchor is not None:
                self.sizes[anchor] = self.nodes - before
        elif isinstance(event, yaml.ScalarEvent):
            self.nodes += 1
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event.anchor, line)
        if self.nodes > MAX_SPEC_NODES:
            what = "YAML aliases expand to" if self.aliased else "the document has"
            raise SpecParseError(f"{what} more than {MAX_SPEC_NODES} nodes (line {line})")

    def _alias(self, anchor: str, line: int) -> None:
        if any(anchor == opened for opened, _ in self.open):
            raise SpecParseError(
                f"the YAML alias *{anchor} at line {line} is inside its own anchor &{anchor}"
            )
        # an undefined alias counts 1 here; composing the document reports it
        self.nodes += self.sizes.get(anchor, 1)
        self.aliased = True


def _line_numbers(node: yaml.Node | None, path: FieldPath = ()) -> dict[FieldPath, int]:
    """Map every key path of a YAML document to its 1-based line."""
    lines: dict[FieldPath, int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines.update(_line_numbers(value, child))
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_numbers(item, (*path, index)))
    return lines


def _line_for(path: FieldPath, lines: dict[FieldPath, int]) -> int | None:
    """The line of `path`, or of its closest ancestor that exists (missing fields)."""
    for end in range(len(path), 0, -1):
        key = tuple(str(p) if not isinstance(p, int) else p for p in path[:end])
        if key in lines:
            return lines[key]
    return None


PIPELINES_ENV = "LOOPLINE_PIPELINES_DIR"


class PipelineSpecsInvalid(Exception):
    """Some pipeline specs of a folder cannot be turned into DAGs: one message for them all,
    as Airflow shows it among its import errors."""

    def __init__(self, errors: list[SpecError], *, total: int) -> None:
        self.errors = errors
        super().__init__(
            f"{len(errors)} of {total} pipeline specs cannot be turned into DAGs; their DAGs "
            "are not built.\n\n" + describe_errors(errors)
        )


def pipelines_folder(default: Path) -> Path:
    """The spec folder: ``$LOOPLINE_PIPELINES_DIR`` if set, else `default`."""
    return Path(os.environ.get(PIPELINES_ENV) or default)


def describe_errors(errors: Iterable[SpecError]) -> str:
    """One message for several bad specs, as shown in Airflow's import errors."""
    errors = list(errors)
    return "\n\n".join(error.render() for error in errors)
