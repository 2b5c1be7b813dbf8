"""Tortoise models, one module per aggregate. This package is the Tortoise app `models`."""

from __future__ import annotations

from imageextract.models.accounts import Account, Membership, Session, User
from imageextract.models.batches import Batch, StagedFile
from imageextract.models.jobs import Image, Job, JobItem
from imageextract.models.ledger import LedgerEntry
from imageextract.models.misc import IdempotencyRecord, PaymentEvent, RateCounter
from imageextract.models.projects import ApiKey, Project
from imageextract.models.webhooks import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__models__ = [
    User,
    Account,
    Membership,
    Session,
    Project,
    ApiKey,
    LedgerEntry,
    Job,
    JobItem,
    Image,
    WebhookEndpoint,
    WebhookDelivery,
    WebhookAttempt,
    IdempotencyRecord,
    PaymentEvent,
    RateCounter,
    Batch,
    StagedFile,
]

__all__ = [m.__name__ for m in __models__] + ["EVENT_TYPES"]
