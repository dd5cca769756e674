"""Room names and message limits, shared by the pages and the consumer.

Kept apart from ``consumers.py`` so that the pages (and so the whole site under WSGI) do not
import Channels.
"""

# ASCII only: the room name becomes part of a channel-layer group name, which allows ASCII
# letters, digits, "-", "_" and "." only.
ROOM = r"(?P<room>[A-Za-z0-9_-]{1,50})"

# A message longer than this is refused rather than relayed to the whole room.
MAX_MESSAGE_CHARS = 2000
MAX_NAME_CHARS = 40


def group_name(room: str) -> str:
    """The channel-layer group of ``room`` (a name that matched ``ROOM``)."""
    return f"chat.{room}"
