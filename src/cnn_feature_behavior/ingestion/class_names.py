"""Readable class names from a file the user supplies (`dataset_source.class_names_file`).

Some datasets number their classes only (flowers102: `class_001` .. `class_102`). Two formats:

- a `.json` file: a JSON object mapping a class's default name (the name the reader gives it,
  e.g. `class_001` for flowers102's label 1, `Abyssinian` for catsdogs) to its new name; classes
  left out of the object keep their default name;
- any other file: UTF-8 text, one name per line, one line for each class the layout defines, in
  the dataset's own class order (flowers102: label 1 first); trailing blank lines are ignored.

Names are stripped of surrounding white space, must be non-empty and, once applied, unique.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


class ClassNamesError(ValueError):
    """The class-names file is missing, malformed or does not fit the dataset's classes."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"class names file {path}: {problem}")


def class_names_from_file(path: Path, default_names: Sequence[str]) -> list[str]:
    """The new name of each class of `default_names` (same order), read from `path`."""
    if not path.is_file():
        raise ClassNamesError(path, "file not found (dataset_source.class_names_file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ClassNamesError(path, f"not readable as UTF-8 text ({error})") from None
    if path.suffix.lower() == ".json":
        names = _from_mapping(path, text, default_names)
    else:
        names = _from_lines(path, text, default_names)
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise ClassNamesError(path, f"names given to more than one class: {', '.join(repeated)}")
    return names


def _from_lines(path: Path, text: str, default_names: Sequence[str]) -> list[str]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != len(default_names):
        raise ClassNamesError(
            path,
            f"{len(lines)} lines, expected one name per class: {len(default_names)} "
            f"({default_names[0]} .. {default_names[-1]}, in this order)",
        )
    names = [line.strip() for line in lines]
    empty = [number for number, name in enumerate(names, start=1) if not name]
    if empty:
        raise ClassNamesError(
            path, f"line {empty[0]} is empty (class {default_names[empty[0] - 1]})"
        )
    return names


def _from_mapping(path: Path, text: str, default_names: Sequence[str]) -> list[str]:
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClassNamesError(path, f"not valid JSON ({error})") from None
    if not isinstance(mapping, dict):
        raise ClassNamesError(path, "expected a JSON object mapping default class names to names")
    unknown = [key for key in mapping if key not in set(default_names)]
    if unknown:
        raise ClassNamesError(
            path,
            f"unknown classes {', '.join(map(repr, unknown[:5]))}; keys are the dataset's default "
            f"class names ({default_names[0]} .. {default_names[-1]})",
        )
    bad = [key for key, name in mapping.items() if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ClassNamesError(path, f"the name of {bad[0]} is not a non-empty string")
    return [mapping[c].strip() if c in mapping else c for c in default_names]
