"""Export actors: one message per source image (its ExportImage id); idempotent (the service makes it so)."""

from __future__ import annotations

import logging
from typing import Any

from imageextract.services import exports
from imageextract.tasks.registry import actor

log = logging.getLogger("imageextract.tasks")

QUEUE_EXPORTS = "exports"


@actor(exports.ACTOR, queue=QUEUE_EXPORTS)
async def convert_export_image(runtime: Any, export_image_id: str) -> None:
    outcome = await exports.process_image(runtime, export_image_id)
    log.info("export image %s: %s", export_image_id, outcome)
