"""The asyncua names this driver uses, imported from where they are defined.

asyncua re-exports them from ``asyncua`` and ``asyncua.ua`` without marking the re-exports, so
``mypy --strict`` rejects ``asyncua.ObjectIds`` and friends; importing them here, from their
own modules, keeps the rest of the driver free of ``type: ignore``.
"""

from __future__ import annotations

from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors._base import UaError, UaStatusCodeError

__all__ = ["AttributeIds", "Client", "ObjectIds", "StatusCodes", "UaError", "UaStatusCodeError"]
