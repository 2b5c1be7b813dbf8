"""Exports (issue 11): exports, their images (one per source image) and the files they produced."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

from imageextract.models.exports import new_export_id, new_export_image_id


class Migration(migrations.Migration):
    dependencies = [("models", "0005_item_warnings")]

    initial = False

    operations = [
        ops.CreateModel(
            name='Export',
            fields=[
                ('id', fields.CharField(primary_key=True, default=new_export_id, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE)),
                ('project', fields.ForeignKeyField('models.Project', source_field='project_id', null=True, db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.SET_NULL)),
                ('job', fields.ForeignKeyField('models.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharField(default='queued', db_index=True, max_length=20)),
                ('settings', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('total_images', fields.IntField(default=0)),
                ('completed_images', fields.IntField(default=0)),
                ('failed_images', fields.IntField(default=0)),
                ('credits_debited', fields.IntField(default=0)),
                ('credits_refunded', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'exports', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExportImage',
            fields=[
                ('id', fields.CharField(primary_key=True, default=new_export_image_id, unique=True, db_index=True, max_length=40)),
                ('export', fields.ForeignKeyField('models.Export', source_field='export_id', db_constraint=True, to_field='id', related_name='images', on_delete=OnDelete.CASCADE)),
                ('image_id', fields.CharField(max_length=40)),
                ('position', fields.IntField()),
                ('basename', fields.CharField(max_length=120)),
                ('format', fields.CharField(max_length=10)),
                ('status', fields.CharField(default='queued', db_index=True, max_length=20)),
                ('attempts', fields.IntField(default=0)),
                ('error_code', fields.CharField(null=True, max_length=40)),
                ('error_message', fields.TextField(null=True, unique=False)),
                ('refunded', fields.BooleanField(default=False)),
                ('lease_expires_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'export_images', 'app': 'models', 'unique_together': (('export', 'position'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExportFile',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('export', fields.ForeignKeyField('models.Export', source_field='export_id', db_constraint=True, to_field='id', related_name='files', on_delete=OnDelete.CASCADE)),
                ('export_image', fields.ForeignKeyField('models.ExportImage', source_field='export_image_id', db_constraint=True, to_field='id', related_name='files', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=20)),
                ('filename', fields.CharField(max_length=160)),
                ('format', fields.CharField(max_length=10)),
                ('width', fields.IntField()),
                ('height', fields.IntField()),
                ('size', fields.BigIntField()),
                ('frames', fields.IntField(default=1)),
                ('storage_key', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'export_files', 'app': 'models', 'unique_together': (('export', 'filename'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
