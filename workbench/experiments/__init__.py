"""One function per paper table or figure; each writes CSV/Markdown/PNG to results/ with provenance."""
