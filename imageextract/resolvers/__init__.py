"""GraphQL resolvers per domain. Each module declares its `Query`, `Mutation` (and `Subscription`) root
fields; `imageextract.graphql_app` merges them. Resolvers parse, call a service, and map its answer."""
