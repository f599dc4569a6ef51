"""Network definitions (one module per model family)."""
