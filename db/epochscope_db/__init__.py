"""The Postgres schema the API and the writer share: versioned SQL migrations and the two service roles."""
