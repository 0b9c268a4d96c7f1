"""The 360dialog Partner API boundary: client, its error type, and fact extraction."""

from receiver.partner.client import PartnerAPIError, PartnerClient
from receiver.partner.facts import ChannelFacts, ClientFacts, channel_facts, client_facts

__all__ = [
    "ChannelFacts",
    "ClientFacts",
    "PartnerAPIError",
    "PartnerClient",
    "channel_facts",
    "client_facts",
]
