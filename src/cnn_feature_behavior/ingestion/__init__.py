"""Ingestion core: dataset layouts, the image index and where raw files come from."""
