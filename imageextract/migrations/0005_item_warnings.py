import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0004_results")]

    operations = [
        ops.AddField(
            model_name="JobItem",
            name="warnings",
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
        ),
    ]
