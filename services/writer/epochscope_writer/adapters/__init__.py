"""The edges: Kafka, Postgres, and the HTTP health endpoint."""
