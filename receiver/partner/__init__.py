"""The 360dialog Partner API boundary (the only httpx user).

`client` (the operations), `auth` (API key or bearer tokens), `retry` (backoff), `errors`
(`PartnerAPIError` and response classification), `facts` (what we read from the answers).
"""

from receiver.partner.client import PartnerClient
from receiver.partner.errors import ErrorKind, PartnerAPIError
from receiver.partner.facts import ChannelFacts, ClientFacts, channel_facts, client_facts

__all__ = [
    "ChannelFacts",
    "ClientFacts",
    "ErrorKind",
    "PartnerAPIError",
    "PartnerClient",
    "channel_facts",
    "client_facts",
]
