"""Production services (database, cache, external API) and the container that owns their lifecycles."""
