"""Regenerate the key table of docs/configuration.md from dstreams.conf.KEYS.

Run from the repository root: ``python tools/gen_configuration_md.py``. The text above the table
is kept; the table (from its header row to the end of the file) is replaced.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from dstreams.conf import _markdown

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    head = text.split("| key | default | meaning |", 1)[0]
    DOC.write_text(head + _markdown() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
