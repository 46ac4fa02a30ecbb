"""Former home of the moto stand-in, now :mod:`streamlab.local.aws`; kept so old imports work.

``aws_client`` lives in :mod:`streamlab.connectors.aws`.

Examples
--------
>>> from streamlab.connectors.aws_local import LocalAWS
>>> LocalAWS is __import__("streamlab.local", fromlist=["LocalAWS"]).LocalAWS
True
"""

from __future__ import annotations

from streamlab.local.aws import LocalAWS

from .aws import aws_client

__all__ = ["LocalAWS", "aws_client"]
