"""attnscope.capture."""
