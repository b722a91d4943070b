"""attnscope.eval."""
