"""attnscope.models."""
