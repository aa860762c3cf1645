"""The API's use cases, one module per family (cosmicpython's service_layer): each function takes its adapters
(a connection or the pool, the object store, the clock, the settings) as arguments; routers parse, call one and
shape the answer; data/ below holds the SQL."""
