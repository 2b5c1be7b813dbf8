from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_failed_image_counts")]

    operations = [
        ops.AddField(model_name="Job", name="webhook_url", field=fields.CharField(max_length=2048, null=True)),
        ops.AddField(model_name="Job", name="webhook_secret", field=fields.CharField(max_length=100, null=True)),
        ops.AlterField(model_name="JobItem", name="upload_key",
                       field=fields.CharField(max_length=200, null=True, db_index=True)),
        ops.AlterField(model_name="Image", name="storage_key",
                       field=fields.CharField(max_length=200, null=True, db_index=True)),
        ops.AddField(model_name="Project", name="retention_days", field=fields.IntField(null=True)),
        ops.CreateModel(
            name="StoredObject",
            fields=[
                ("key", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ("touched_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={"table": "stored_objects", "app": "models", "pk_attr": "key"},
            bases=["Model"],
        ),
    ]
