"""Mode S files and live feeds as sources of ADS-B plot batches."""

from __future__ import annotations

import gzip
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from siap import records
from siap.formats.modes.decoder import VELOCITY_DTYPE, ModeSDecoder, ReceiverConfig
from siap.formats.modes.frames import BeastFramer, Frames, _TickClock, frame_avr, frame_jsonl

__all__ = ["FILE_KINDS", "file_kind", "read_frames", "file_source", "decode_file", "beast_tcp_source", "beast_udp_source"]

FILE_KINDS = ("beast", "avr", "jsonl")


def file_kind(path: str | Path) -> str:
    """The input form of a file by its name: ``.bin``/``.beast`` Beast, ``.avr``/``.txt`` AVR,
    ``.jsonl``/``.json`` (optionally ``.gz``) JSON lines."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".bin", ".beast")):
        return "beast"
    if name.endswith((".avr", ".txt")):
        return "avr"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise ValueError(f"{path}: unknown Mode S file type; expected .bin, .avr or .jsonl[.gz]")


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_frames(path: str | Path, *, start_time_s: float | None = None, chunk_lines: int = 20000,
                chunk_bytes: int = 1 << 20) -> Iterator[Frames]:
    """The frames of a Beast, AVR or JSON-lines file, in chunks. Beast and AVR ``@`` counters
    are relative: they start at ``start_time_s`` (default: the file's modification time)."""
    path = Path(path)
    kind = file_kind(path)
    start = start_time_s if start_time_s is not None else path.stat().st_mtime
    if kind == "beast":
        framer = BeastFramer(start, name=str(path))
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            while True:
                data = fh.read(chunk_bytes)
                frames = framer.feed(data, final=not data, arrival_s=start)
                if len(frames) or frames.dropped:
                    yield frames
                if not data:
                    return
    clock = _TickClock(start)
    with _open_text(path) as fh:
        lineno = 1
        while True:
            lines = [ln for _, ln in zip(range(chunk_lines), fh, strict=False)]
            if not lines:
                return
            if kind == "avr":
                yield frame_avr(lines, clock, first_line=lineno, arrival_s=start, name=str(path))
            else:
                yield frame_jsonl(lines, first_line=lineno, name=str(path))
            lineno += len(lines)


def file_source(path: str | Path, receiver: ReceiverConfig, *, start_time_s: float | None = None,
                decoder: ModeSDecoder | None = None) -> Iterator[np.ndarray]:
    """A source: the ADS-B plot batches (PLOT_DTYPE, non-decreasing time) of a Mode S file."""
    dec = decoder or ModeSDecoder(receiver, name=str(path))
    start = start_time_s if start_time_s is not None else receiver.start_time_s
    for frames in read_frames(path, start_time_s=start):
        res = dec.decode(frames)
        if len(res.plots):
            yield res.plots


def decode_file(path: str | Path, receiver: ReceiverConfig, *, start_time_s: float | None = None):
    """Decode a whole Mode S file: (plots, velocities, counts summed over the file)."""
    dec = ModeSDecoder(receiver, name=str(path))
    plots, vels, counts = [], [], Counter()
    start = start_time_s if start_time_s is not None else receiver.start_time_s
    for frames in read_frames(path, start_time_s=start):
        res = dec.decode(frames)
        plots.append(res.plots)
        vels.append(res.velocities)
        counts.update(res.counts)
    all_plots = records.concatenate(plots) if plots else records.empty_plots(0)
    all_vels = np.concatenate(vels) if vels else np.zeros(0, VELOCITY_DTYPE)
    return all_plots, all_vels, dict(counts)


def beast_tcp_source(host: str, port: int, receiver: ReceiverConfig, *, read_bytes: int = 65536,
                     timeout_s: float = 1.0, stop=None, start_time_s: float | None = None) -> Iterator[np.ndarray]:
    """A live source: connect to a Beast TCP server (dump1090/readsb port 30005) and yield
    plot batches as data arrives; frames are stamped from their 12 MHz counters anchored at
    the arrival time of the first (or at ``start_time_s``: a replayed feed). Ends when the
    server closes or ``stop()`` returns true."""
    framer = BeastFramer(start_time_s, name=f"tcp:{host}:{port}")
    dec = ModeSDecoder(receiver, name=framer.name)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        while stop is None or not stop():
            try:
                data = sock.recv(read_bytes)
            except TimeoutError:
                continue
            res = dec.decode(framer.feed(data, final=not data))
            if len(res.plots):
                yield res.plots
            if not data:
                return


def beast_udp_source(host: str, port: int, receiver: ReceiverConfig, *, timeout_s: float = 1.0,
                     stop=None, sock: socket.socket | None = None,
                     start_time_s: float | None = None) -> Iterator[np.ndarray]:
    """A live source: Beast frames in UDP datagrams (each datagram holds whole frames) on
    ``host:port`` (or an already bound ``sock``). Runs until ``stop()`` returns true. Times as
    :func:`beast_tcp_source`."""
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
    sock.settimeout(timeout_s)
    framer = BeastFramer(start_time_s, name=f"udp:{host}:{port}")
    dec = ModeSDecoder(receiver, name=framer.name)
    try:
        while stop is None or not stop():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            res = dec.decode(framer.feed(data, final=True))
            if len(res.plots):
                yield res.plots
    finally:
        if own:
            sock.close()
