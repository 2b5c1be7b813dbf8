"""The documented REST routes (shared/spec/000), served on the same services as GraphQL."""
