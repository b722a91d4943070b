"""attnscope.bench."""
