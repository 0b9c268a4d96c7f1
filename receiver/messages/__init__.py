"""Message rendering: sandboxed Jinja templates with a plain fallback that never fails."""

from receiver.messages.context import build_context, facts_of
from receiver.messages.fallback import fallback_message
from receiver.messages.render import Rendered, Renderer

__all__ = ["Rendered", "Renderer", "build_context", "facts_of", "fallback_message"]
