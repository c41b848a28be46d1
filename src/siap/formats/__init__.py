"""Standard interfaces: bytes on the wire or on disk <-> siap record batches.

Each format lives in its own module or package: :mod:`siap.formats.asterix` (EUROCONTROL
ASTERIX in and out), :mod:`siap.formats.modes` (Mode S / ADS-B in), :mod:`siap.formats.cot`
(Cursor-on-Target out), :mod:`siap.formats.recording` (Parquet recording and replay). See
docs/formats.md.
"""
