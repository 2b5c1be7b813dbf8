"""GraphQL types per domain (accounts, projects, jobs, webhooks, ...) and the typed context. The schema is
assembled in `imageextract.graphql_app` from the Query / Mutation / Subscription classes that each
`resolvers/<domain>.py` declares; this package holds only types and imports nothing from `resolvers/`."""
