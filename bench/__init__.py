"""``make bench``: shoal's performance figures, measured side by side.

See ``bench/README.md`` for what each figure means and how to read it.
"""
