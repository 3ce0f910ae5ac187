"""``make bench``: the performance figures of DESIGN §7, measured side by side.

See ``bench/README.md`` for what each figure means and how to read it.
"""
