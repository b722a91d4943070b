"""Assemble README.md from docs/sections/*.md in reading order (each section is owned by its package)."""

from pathlib import Path

ORDER = ["intro", "core", "toy", "render", "analyze", "bend", "viewer", "sweep", "bench", "eval", "libraries", "limits"]
root = Path(__file__).resolve().parents[1]
parts = [(root / "docs" / "sections" / f"{name}.md").read_text().strip() for name in ORDER
         if (root / "docs" / "sections" / f"{name}.md").exists()]
(root / "README.md").write_text("\n\n".join(parts) + "\n")
print(f"README.md: {sum(p.count(chr(10)) for p in parts)} lines from {len(parts)} sections")
