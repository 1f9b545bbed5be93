"""Who may see a video and its playback.

- ``public``: once online, anyone may read it by id and play it (the original service's
  behaviour, and the default for its clients).
- ``unlisted``: the same by id, but never in a list meant for other people.
- ``private``: the owner only; playback needs a playback token issued to the owner.

Before a video is online only its owner sees it, whatever the visibility. A video nobody
may see answers 404, exactly like a missing one.
"""

from __future__ import annotations

from api_service.auth.tokens import PlaybackGrant
from api_service.db.models import Video, Visibility
from shared.status import VideoStatus

LISTED = (Visibility.PUBLIC,)


def can_view(video: Video, user_id: int | None) -> bool:
    if user_id is not None and video.owner_id == user_id:
        return True
    return video.status == VideoStatus.ONLINE and video.visibility != Visibility.PRIVATE


def can_play(video: Video, grant: PlaybackGrant) -> bool:
    """The grant already names this video; a private one also needs the owner's grant."""
    return grant.video_id == video.id and (video.visibility != Visibility.PRIVATE or grant.owner)
