"""The API's data layer: all of its SQL, one module per resource.

Every function runs on a connection inside the caller's user transaction, so row-level security decides what
exists: another user's job reads as no job at all. Errors are errors.py's domain errors, never HTTP ones.
"""
