"""Plain-text rendering of recursions (``fieldnet derive``)."""

from __future__ import annotations

import sympy as sp


def recursion_text(rec) -> str:
    lines = [f"{rec.name}" + (f" — activation {rec.activation.name}" if rec.activation else " — generic phi")]
    for title, which in (("layer 1", "initial"), ("layer l -> l+1", "update")):
        lines.append(f"  {title}:")
        for eq in rec.equations(which):
            lines.append(f"    {sp.sstr(eq.lhs)} = {sp.sstr(eq.rhs)}")
    for note in rec.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
