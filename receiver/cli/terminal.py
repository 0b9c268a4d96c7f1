"""Text that is safe to print on an operator's terminal.

Client names, ids and error messages come from 360dialog, from webhook senders and from
remote servers. Printed raw, an escape sequence in a client's name can clear the screen,
rewrite earlier lines or retitle the window, so every CLI table and line goes through
`clean()` first. JSON output needs nothing: `json.dumps` escapes control characters.
"""

from __future__ import annotations

import re

# C0 (incl. ESC), DEL and C1 controls, plus the bidi overrides that reorder what a line
# appears to say (CVE-2021-42574).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """Return `text` without control characters (newlines and tabs included)."""
    return _CONTROL.sub("", text)


def clean_lines(text: str) -> str:
    """Return multi-line `text` with each line cleaned; the line breaks stay."""
    return "\n".join(clean(line) for line in text.split("\n"))
