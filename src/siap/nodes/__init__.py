"""A distributed coalition: node roles as processes over NATS JetStream (one account per
partner, TLS), node configuration files, and ``siap up`` / ``siap down`` for a local network.

See docs/transport.md ("Nodes and a local network").
"""

from .config import NodeConfig, load_node_config

__all__ = ["NodeConfig", "load_node_config"]
