from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0002_billing")]

    operations = [
        ops.AddField(model_name="Job", name="failed_image_count", field=fields.IntField(default=0)),
        ops.AddField(model_name="JobItem", name="failed_image_count", field=fields.IntField(default=0)),
    ]
