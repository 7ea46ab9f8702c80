"""A run's log: one record a line where it is redirected, Rich on a terminal; progress as log
records where stderr is not a terminal."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
import yaml
from builders.project import kedro_run

from cnn_feature_behavior import log_lines

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _project_logging(project_root, stream) -> logging.Logger:
    """A logger configured by the project's conf/logging.yml, its console on `stream`."""
    config = yaml.safe_load((project_root / "conf" / "logging.yml").read_text())
    handler = config["handlers"]["console"]
    formatter = config["formatters"][handler["formatter"]]
    plain = logging.StreamHandler(stream)
    plain.name = "console"
    plain.setFormatter(logging.Formatter(formatter["format"], formatter["datefmt"]))
    test_logger = logging.getLogger(f"test_log_lines.{id(stream)}")
    test_logger.propagate = False
    test_logger.handlers = [plain]
    test_logger.setLevel(logging.INFO)
    return test_logger


def test_a_long_record_is_one_line_where_the_log_is_redirected(project_root):
    stream = io.StringIO()
    test_logger = _project_logging(project_root, stream)
    assert not log_lines.rich_on_a_terminal(test_logger)
    message = "Feature extraction: " + ", ".join(f"block{k}_add" for k in range(40))
    test_logger.info(message)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and RECORD.match(lines[0]) and lines[0].endswith(message)


def test_a_terminal_gets_kedros_rich_handler(project_root):
    from kedro.logging import RichHandler

    stream = _Terminal()
    test_logger = _project_logging(project_root, stream)
    assert log_lines.rich_on_a_terminal(test_logger)
    (handler,) = test_logger.handlers
    assert isinstance(handler, RichHandler) and handler.console.file is stream
    test_logger.info("on a terminal")
    assert "on a terminal" in stream.getvalue()


def test_progress_is_logged_at_every_tenth_where_stderr_is_not_a_terminal(caplog, monkeypatch):
    # A test before this one may have imported ipykernel (the report notebook's), which counts
    # as Jupyter for the whole process.
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    with caplog.at_level(logging.INFO, logger="cnn_feature_behavior.log_lines"):
        with log_lines.progress(600, "feature extraction") as images_done:
            assert isinstance(images_done, log_lines.LoggedProgress)
            for _ in range(60):
                images_done.update(10)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 10
    assert messages[0].startswith("feature extraction: 60 of 600 img (10%), ")
    assert messages[0].endswith(" left")
    assert messages[-1].startswith("feature extraction: 600 of 600 img (100%), ")
    assert ", in " in messages[-1]
    assert log_lines.progress(5, "x", disable=True).disable


@pytest.mark.slow
def test_kedro_run_redirected_logs_one_record_a_line(project_copy):
    """Before, Kedro's Rich handler wrapped each record at 80 columns when not on a terminal."""
    result = kedro_run(project_copy, "--pipelines", "ingestion")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    lines = result.stdout.splitlines()
    assert lines and all(RECORD.match(line) for line in lines), [
        line for line in lines if not RECORD.match(line)
    ][:5]
    assert any("Using 'conf/logging.yml' as logging configuration" in line for line in lines)
    assert any(
        "Running node: prepare_raw_dir: prepare_raw_dir([params:raw_dir;" in line for line in lines
    )
