"""Pronunciation lexicons: rules that respell words before a text is spoken.

A tenant keeps lexicons (:mod:`.model`) in Redis (:mod:`.store`); a job names
up to five, and :func:`.apply.apply_lexicons` rewrites its text before it is
segmented, so the provider receives, and the tenant is billed for, the text
as respelled.  :mod:`.pls` reads and writes the W3C Pronunciation Lexicon
Specification format other services take.
"""
