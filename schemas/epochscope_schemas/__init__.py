"""Epochscope's shared contract: the job config, events, topics and job tokens."""
