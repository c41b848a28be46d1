"""The live service: HTTP/WebSocket API and the per-partner web COP.

* :class:`PictureHub`: the picture sink that keeps each partner's latest view and fans it out.
* :class:`LiveSource`: what the service needs of a source (``siap.runtime.Runtime``);
  :class:`PictureReplayer` replays recorded pictures through the same contract.
* :func:`create_app`: the FastAPI application; :class:`ServiceConfig`: tokens and limits.

docs/service.md describes the endpoints, access rules and the WebSocket protocol.
"""

from siap.service.app import create_app
from siap.service.config import ServiceConfig, load_service_config
from siap.service.hub import PictureHub, View
from siap.service.live import LiveSource, PictureReplayer, load_recording, save_recording
from siap.service.tracks import Identifier, IdentityRule

__all__ = [
    "create_app",
    "ServiceConfig",
    "load_service_config",
    "PictureHub",
    "View",
    "LiveSource",
    "PictureReplayer",
    "load_recording",
    "save_recording",
    "Identifier",
    "IdentityRule",
]
