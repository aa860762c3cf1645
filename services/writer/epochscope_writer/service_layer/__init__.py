"""The apply rules and the consumer loop, written against ports that adapters/ implements."""
