"""Mode S / ADS-B in: Beast binary, AVR text and JSON lines -> ADS-B plot batches.

Modules: :mod:`.frames` (framing), :mod:`.parity` (CRC, identity), :mod:`.decoder` (rs1090,
CPR per aircraft, plots), :mod:`.cpr` (position formulas), :mod:`.sources` (files, feeds),
:mod:`.encode` (plots -> frames, for simulated feeds).

The work is split so that the expensive, general decoder sees as little as possible:

1. **Framing** (compiled): :func:`frame_beast` walks a Beast byte stream in one numba loop
   (escape bytes ``0x1a 0x1a``, message types ``'1'`` Mode A/C, ``'2'`` short and ``'3'`` long
   Mode S, 6-byte 12 MHz timestamp, signal level); :func:`frame_avr` and :func:`frame_jsonl`
   read the text forms. Every form yields :class:`Frames` (arrays, one row per frame).
2. **Check and filter** (compiled / vectorised): the 24-bit Mode S CRC of every frame
   (:func:`crc_remainder`; ICAO Annex 10 Vol. IV sec. 3.1.2.3.3, generator 0x1FFF409).
   Extended squitters (DF17, DF18 CF 0/1) must have remainder 0; DF11 may carry an
   interrogator code in the low 7 bits; address/parity replies (DF0/4/5/16/20/21) give the
   address as their remainder and are kept only when that address has been verified by a
   squitter. The Mode 3/A identity of DF5/DF21 is read here (Annex 10 Vol. IV 3.1.2.6.7.1).
3. **Decoding** with ``rs1090`` (MIT), in batches, of the extended squitters that can become
   plot fields only: identification (TC 1-4), surface (5-8) and airborne (9-18, 20-22)
   position, velocity (19), target state (29) and operational status (31).
4. **CPR per aircraft** (:class:`ModeSDecoder`): rs1090's batch decoder keeps no state between
   calls, so the compact position reports are resolved here, per aircraft, across batches
   (ICAO Doc 9871 Appendix C.2.6; J. Sun, *The 1090 MHz Riddle*, ch. 5): airborne positions by
   a global even/odd pair received within 10 s, then locally against the aircraft's last
   position (< 180 s old); surface positions by a global pair received within 50 s, its
   quadrant chosen by the receiver's position, then locally against the aircraft's last
   position (< 300 s old; valid within 45 NM).

Each resolved position is one :data:`siap.records.PLOT_DTYPE` plot of kind ``ADSB``:
``cov`` in local east-north-up from the aircraft's NACp (last TC 29/31 report) or else the
position message's NUCp (DO-260A Table 2-14, the 95 % radius ``RCu``), as
:mod:`siap.sensors.adsb` does (``sigma = R95 / 2.448`` per axis); the altitude variance from
the altitude source. The plot record carries no velocity: decoded velocities (TC 19) come
out beside the plots as a :data:`VELOCITY_DTYPE` batch (see :class:`DecodeResult`).

Bad input never stops a stream: each dropped frame is counted by reason
(:attr:`ModeSDecoder.dropped`, :attr:`Frames.dropped`) and logged with its byte offset or
line number (the first few of each reason; then only counted).
"""

from siap.formats.modes import cpr, decoder, frames, parity, sources
from siap.formats.modes.cpr import cpr_global_airborne, cpr_global_surface, cpr_local
from siap.formats.modes.decoder import (
    FT_M,
    NUCP_R95_M,
    VELOCITY_DTYPE,
    DecodeResult,
    ModeSDecoder,
    ReceiverConfig,
)
from siap.formats.modes.frames import (
    BeastFramer,
    Frames,
    encode_beast,
    frame_avr,
    frame_beast,
    frame_jsonl,
)
from siap.formats.modes.parity import crc_remainder, identity_code
from siap.formats.modes.sources import (
    beast_tcp_source,
    beast_udp_source,
    decode_file,
    file_kind,
    file_source,
    read_frames,
)

__all__ = [
    "ReceiverConfig",
    "Frames",
    "DecodeResult",
    "VELOCITY_DTYPE",
    "NUCP_R95_M",
    "FT_M",
    "frame_beast",
    "encode_beast",
    "BeastFramer",
    "frame_avr",
    "frame_jsonl",
    "crc_remainder",
    "identity_code",
    "cpr_global_airborne",
    "cpr_global_surface",
    "cpr_local",
    "ModeSDecoder",
    "file_kind",
    "read_frames",
    "decode_file",
    "file_source",
    "beast_tcp_source",
    "beast_udp_source",
    "cpr",
    "decoder",
    "frames",
    "parity",
    "sources",
]
