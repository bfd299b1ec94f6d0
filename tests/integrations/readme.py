"""The copy-paste snippets of middleware/README.md, extracted by section so tests run them as written."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "middleware" / "README.md"


def snippet(section: str, index: int = 0) -> str:
    """The ``index``-th fenced python block under the ``## <section>`` heading (up to the next ``## ``)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\b.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise LookupError(f"middleware/README.md has no section '## {section}'")
    blocks = re.findall(r"^```python\n(.*?)^```", match.group(1), re.M | re.S)
    if len(blocks) <= index:
        raise LookupError(f"middleware/README.md section '{section}' has no python block #{index}")
    return str(blocks[index])
