"""The SMS gateway interface: template + parameters -> message id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SmsReceipt:
    """The gateway accepted a message.

    :ivar message_id: the gateway's reference, kept for the audit trail.
    """

    message_id: str


class SmsGatewayError(Exception):
    """The gateway refused the message or could not be reached; nothing was sent."""


class SmsGateway(Protocol):
    """Sends templated text messages to mobile numbers."""

    def send(self, template: str, phone: str, params: Mapping[str, str]) -> SmsReceipt:
        """Send template ``template`` with ``params`` to ``phone`` (E.164).

        :raises SmsGatewayError: when the message was not accepted.
        """
