"""Extraction core: crops, source models, the streamed embedding and its sharded store."""
