"""What the README shows of the repository's example files is what the files hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readmes_task_file_example_is_examples_run_json():
    readme = (REPO / "README.md").read_text()
    after = readme.split("This repository's `examples/run.json`", 1)[1]
    shown = re.search(r"```json\n(.*?)```", after, re.DOTALL).group(1)
    assert json.loads(shown) == json.loads((REPO / "examples" / "run.json").read_text())


def test_the_readmes_commands_name_files_of_this_repository():
    readme = (REPO / "README.md").read_text()
    for path in ("examples/sample_suite", "examples/run.json"):
        assert path in readme
        assert (REPO / path).exists(), path
