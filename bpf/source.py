"""The program text bcc compiles: the generated layout header, then ``lb.c``."""

from __future__ import annotations

from pathlib import Path

from .layout import render_header

__all__ = ["INGRESS_FUNCTION", "LB_SOURCE", "program_text"]

LB_SOURCE = Path(__file__).with_name("lb.c")
#: The TC (direct-action) entry point of lb.c.
INGRESS_FUNCTION = "tlb_ingress"


def program_text(pin_dir: str | None, source: Path = LB_SOURCE) -> str:
    """Header with maps pinned under ``pin_dir`` (None: unpinned) followed by ``source``."""
    return render_header(pin_dir) + "\n" + source.read_text()
