"""GraphQL field functions per domain: parse, call the service, map to schema types."""
