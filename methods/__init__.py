"""Unlearning methods, one per file; each registers itself with `@register_method`.

Files whose names start with `_` (helpers, the copy-me template) are not imported as methods.
"""
