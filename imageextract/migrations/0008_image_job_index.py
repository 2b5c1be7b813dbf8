"""Indexes for reading a job's images (issue 14).

- `images (job_id, storage_key)`: every result read, page and export selects a job's images, stored or not,
  by `job_id`, which had no index of its own (only `(item_id, position)`).
- The declared indexes Tortoise's migrations lost: on SQLite, those of `job_items` and `images` (migration
  0004's column changes rebuilt both tables without them); on both databases, those of fields added with
  `db_index` (`payment_events`, migration 0002). See `imageextract.db_indexes`.
"""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from imageextract.db_indexes import restore_indexes


class Migration(migrations.Migration):
    dependencies = [("models", "0007_batches")]

    initial = False

    operations = [
        ops.RunPython(restore_indexes, ops.RunPython.noop),
        ops.AddIndex(
            model_name='Image',
            index=Index(fields=['job_id', 'storage_key'], name='images_job_stored'),
        ),
    ]
