from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from imageextract.models.batches import new_file_id


class Migration(migrations.Migration):
    dependencies = [("models", "0006_exports")]

    initial = False

    operations = [
        ops.CreateModel(
            name='Batch',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('job', fields.OneToOneField('models.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='batch', on_delete=OnDelete.CASCADE)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='batches', on_delete=OnDelete.CASCADE)),
                ('window', fields.IntField(default=1)),
                ('next_position', fields.IntField(default=0)),
                ('cancel_requested_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'batches', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StagedFile',
            fields=[
                ('id', fields.CharField(primary_key=True, default=new_file_id, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='staged_files', on_delete=OnDelete.CASCADE)),
                ('filename', fields.CharField(max_length=255)),
                ('size_bytes', fields.BigIntField()),
                ('content_type', fields.CharField(null=True, max_length=100)),
                ('storage_key', fields.CharField(max_length=200)),
                ('status', fields.CharField(default='pending', max_length=20)),
                ('detected_type', fields.CharField(null=True, max_length=20)),
                ('batch_id', fields.UUIDField(null=True, db_index=True)),
                ('upload_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('uploaded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'staged_files', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddIndex(
            model_name='JobItem',
            index=Index(fields=['job_id', 'updated_at', 'id'], name='job_items_job_updated_id'),
        ),
    ]
