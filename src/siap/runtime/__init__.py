"""The live runtime: clocks, sources, partner nodes, sinks; the one loop every mode runs.

    from siap.runtime import Runtime, ReplayClock
    rt = Runtime.from_scenario("pacific", clock=ReplayClock(speed=10))
    rt.add_sink(my_sink)            # my_sink.on_picture(picture) after every partner update
    rt.start(); ...; rt.pause(); rt.set_speed(2); rt.seek(t); rt.resume(); rt.stop()

See docs/runtime.md.
"""

from .clock import Clock, RealTimeClock, ReplayClock, VirtualClock
from .groups import GROUP_SHIFT, SourceGroup, group_index, label_plots, source_groups
from .partner import DEFAULT_SUBJECT_PREFIX, PartnerNode, UpdateSchedule, subject_for
from .replay import ReplayInput, open_replay_input
from .runtime import Runtime, RuntimeResult, node_id_for
from .sinks import OnePartner, PictureRecorder, QueuedSink, SinkSet
from .sources import ArraySource, SimulatorSource, ThreadedSource

__all__ = [
    "DEFAULT_SUBJECT_PREFIX",
    "GROUP_SHIFT",
    "ArraySource",
    "Clock",
    "OnePartner",
    "PartnerNode",
    "PictureRecorder",
    "QueuedSink",
    "RealTimeClock",
    "ReplayClock",
    "ReplayInput",
    "Runtime",
    "RuntimeResult",
    "SimulatorSource",
    "SinkSet",
    "SourceGroup",
    "ThreadedSource",
    "UpdateSchedule",
    "VirtualClock",
    "group_index",
    "label_plots",
    "node_id_for",
    "open_replay_input",
    "source_groups",
    "subject_for",
]
