"""Standard interfaces: bytes on the wire or on disk <-> siap record batches.

Each format lives in its own module or package (``asterix``: EUROCONTROL ASTERIX in and out).
"""
