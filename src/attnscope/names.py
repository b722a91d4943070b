"""Folder names made from prompts and labels: one rule for `generate`'s default --out, the studio's runs and a
sweep's job folders, so the same prompt reads the same in every runs folder."""

from __future__ import annotations

import re


def slug(text: str, limit: int = 48, keep: str = "", empty: str = "run") -> str:
    """Lower-case letters and digits (and the characters in ``keep``); every other run of characters becomes one
    dash; at most ``limit`` characters, trimmed of dashes (and ``keep``) at both ends; ``empty`` when nothing is
    left. A sweep keeps "." so that "reweight circle 0.5" stays readable."""
    edges = "-" + keep
    pattern = f"[^a-z0-9{re.escape(keep)}]+"
    return re.sub(pattern, "-", text.lower()).strip(edges)[:limit].strip(edges) or empty
