"""One finding of the validator or the lint, printed as one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """Where (a JSON path like ``panels[2].targets[0].metrics[0]``), what, and how bad."""

    where: str
    message: str
    severity: Severity = "error"
    check: str = "schema"  # schema | lint

    def line(self, source: str = "") -> str:
        prefix = f"{source}: " if source else ""
        return f"{prefix}{self.severity}: {self.where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message, "severity": self.severity, "check": self.check}


def json_path(parts: Any) -> str:
    """``["panels", 2, "gridPos"]`` -> ``panels[2].gridPos``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(dashboard)"


def panel_label(panel: dict[str, Any]) -> str:
    """A short human label for messages: ``id 4 "Hops"``."""
    title = panel.get("title")
    ident = panel.get("id")
    bits = []
    if ident is not None:
        bits.append(f"id {ident}")
    if isinstance(title, str) and title:
        bits.append(f'"{title[:40]}"')
    return " ".join(bits) or "untitled panel"
