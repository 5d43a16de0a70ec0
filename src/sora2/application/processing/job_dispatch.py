"""Video-job dispatch: requested videos go to this process's job runner, cancels stop them.

Every process that renders follows the log with this processor, so a video requested or
cancelled through any API process reaches every runner; the claim in the job table decides
which one renders (a process that renders nothing, VIDEO_JOBS=off, has no such lane). Its
position lives in memory and starts at the head: what was requested before the process
started is found by the job sweeper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from sora2.application.processing.processor import Processor, Stored
from sora2.domain.videos.video import Video

DISPATCH_NAME = "sora2/job-dispatch"


class JobDispatch(Processor):
    name = DISPATCH_NAME

    def __init__(
        self,
        start_at: int,
        submit: Callable[[UUID], None],
        cancel: Callable[[UUID], None],
    ) -> None:
        self._position = start_at
        self.submit = submit
        self.cancel = cancel

    def position(self) -> int:
        return self._position

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        for stored in batch:
            kind = type(stored.event)
            if kind is Video.Requested:
                self.submit(stored.event.originator_id)
            elif kind in (Video.Cancelled, Video.Deleted, Video.Failed):
                self.cancel(stored.event.originator_id)
        self._position = batch[-1].position
