"""Billing: subscriptions, and the provider facts kept on each payment event."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [
        ops.CreateModel(
            name='Subscription',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('provider_subscription_id', fields.CharField(unique=True, max_length=200)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='subscriptions', on_delete=OnDelete.CASCADE)),
                ('product_id', fields.CharField(max_length=200)),
                ('plan', fields.CharField(max_length=20)),
                ('status', fields.CharField(max_length=20)),
                ('current_period_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('current_period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cancel_at_period_end', fields.BooleanField(default=False)),
                ('ends_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('ended', fields.BooleanField(default=False)),
                ('last_event_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'subscriptions', 'app': 'models', 'pk_attr': 'id', 'table_description': "One provider subscription. `last_event_at` is the provider's timestamp of the newest lifecycle event"},
            bases=['Model'],
        ),
        ops.AlterModelOptions(
            name='PaymentEvent',
            options={'table': 'payment_events', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A verified payment webhook, stored once per `webhook-id` (`provider_event_id`).'},
        ),
        ops.AddField(
            model_name='PaymentEvent',
            name='amount',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='PaymentEvent',
            name='currency',
            field=fields.CharField(null=True, max_length=10),
        ),
        ops.AddField(
            model_name='PaymentEvent',
            name='occurred_at',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='PaymentEvent',
            name='outcome',
            field=fields.CharField(default='recorded', max_length=30),
        ),
        ops.AddField(
            model_name='PaymentEvent',
            name='payment_id',
            field=fields.CharField(null=True, db_index=True, max_length=200),
        ),
        ops.AddField(
            model_name='PaymentEvent',
            name='subscription_id',
            field=fields.CharField(null=True, db_index=True, max_length=200),
        ),
    ]
