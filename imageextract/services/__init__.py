"""Business rules, written once. No strawberry or starlette imports here."""
