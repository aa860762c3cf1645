"""Code every Epochscope service runs identically (the contract itself lives in epochscope_schemas)."""
