"""Pure rules and value types: decoding, dead letters, job tokens. No I/O."""
