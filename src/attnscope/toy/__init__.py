"""attnscope.toy."""
