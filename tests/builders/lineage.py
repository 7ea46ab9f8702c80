"""Lineage records for outputs a test writes itself (synthetic upstream outputs).

A run refuses an input without a lineage record (docs/reliability.md, "Lineage"): a test that
writes a pipeline's outputs through the catalog, to run a later pipeline on them, saves them with
`save_recorded`, which leaves the record a run writing them from nothing would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnn_feature_behavior.lineage import digests, records


def save_recorded(project: Path, catalog: Any, name: str, data: Any) -> None:
    """`catalog.save(name, data)`, and a record beside it: no inputs, no parameters."""
    catalog.save(name, data)
    dataset = catalog.get(name)
    described = dataset._describe()  # noqa: SLF001 - where the dataset keeps its data
    location = Path(described.get("filepath") or described.get("path"))
    if not location.is_absolute():
        location = project / location
    own = getattr(dataset, "content_digest", None)
    content = own() if callable(own) else digests.content_digest(location)
    records.write_record(
        location,
        {
            "format": records.RECORD_FORMAT,
            "dataset": name,
            "path": location.resolve().relative_to(project.resolve()).as_posix(),
            "written": records.now(),
            "node": None,
            "pipeline": None,
            "content": content,
            "inputs": {},
            "parameters": {},
            "settings": {},
        },
    )
