"""Former home of the local Pub/Sub emulator, now :mod:`streamlab.local.pubsub`; kept so old imports work.

``python -m streamlab.connectors.pubsub_emulator --port 8085`` still runs it.

Examples
--------
>>> from streamlab.connectors.pubsub_emulator import PubSubEmulator
>>> PubSubEmulator is __import__("streamlab.local", fromlist=["PubSubEmulator"]).PubSubEmulator
True
"""

from __future__ import annotations

from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs, main

__all__ = ["PubSubEmulator", "emulator_client_kwargs", "main"]

if __name__ == "__main__":
    main()
