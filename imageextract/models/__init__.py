"""Tortoise models, one module per aggregate. This package is the Tortoise app `models`."""

from __future__ import annotations

from imageextract.models.accounts import Account, Membership, Session, User
from imageextract.models.batches import Batch, StagedFile
from imageextract.models.billing import PaymentEvent, Subscription
from imageextract.models.exports import Export, ExportFile, ExportImage
from imageextract.models.jobs import Image, Job, JobItem
from imageextract.models.ledger import LedgerEntry
from imageextract.models.misc import IdempotencyRecord, RateCounter
from imageextract.models.projects import ApiKey, Project
from imageextract.models.storage import StoredObject
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
    Subscription,
    RateCounter,
    StoredObject,
    Export,
    ExportImage,
    ExportFile,
    Batch,
    StagedFile,
]

__all__ = [m.__name__ for m in __models__] + ["EVENT_TYPES"]
