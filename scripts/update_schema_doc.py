"""Rewrite the node tables of docs/netlist-format.md from the registered node types (the section
between the first node heading under "## Nodes and ports" and "## Validation")."""

from pathlib import Path

from pspike_neuro.nodes import REGISTRY, schema_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "netlist-format.md"

text = DOC.read_text()
section = text.index("## Nodes and ports")
start = min(text.index(f"### `{name}`", section) for name in REGISTRY if f"### `{name}`" in text[section:])
end = text.index("## Validation")
DOC.write_text(text[:start] + schema_markdown().rstrip() + "\n\n" + text[end:])
print(f"{DOC}: {len(REGISTRY)} node types")
