"""EUROCONTROL ASTERIX in and out.

In: CAT048 (monoradar target reports), CAT034 (monoradar service messages), CAT021 (ADS-B)
from raw files, pcap/pcapng captures and live UDP, decoded by one compiled pass
(:mod:`.framing`, :mod:`.decode`) into field tables and then into plot batches
(:mod:`.plots`, :mod:`.sites`, :mod:`.source`). Out: the picture as CAT062 system tracks and
CAT065 SDPS service messages (:mod:`.encode`, :mod:`.tracks`). See docs/formats.md.
"""

from .capture import read_payloads
from .decode import CAT021_DTYPE, CAT034_DTYPE, CAT048_DTYPE, Decoded, decode, resolve_time_of_day
from .encode import encode_cat021, encode_cat048, encode_cat062, encode_cat065
from .plots import cat021_to_plots, cat048_to_plots, plots_to_cat021, plots_to_cat048
from .sites import Site, Sites, load_sites
from .source import AsterixFileSource, AsterixStats, AsterixUdpSource, drop_summary
from .tracks import Cat062Sink, Cat062Writer, tracks_to_cat062

__all__ = [
    "CAT021_DTYPE", "CAT034_DTYPE", "CAT048_DTYPE", "Decoded", "decode", "resolve_time_of_day",
    "read_payloads", "encode_cat021", "encode_cat048", "encode_cat062", "encode_cat065",
    "cat021_to_plots", "cat048_to_plots", "plots_to_cat021", "plots_to_cat048",
    "Site", "Sites", "load_sites", "AsterixFileSource", "AsterixStats", "AsterixUdpSource",
    "drop_summary", "Cat062Sink", "Cat062Writer", "tracks_to_cat062",
]  # fmt: skip
