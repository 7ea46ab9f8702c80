"""Lineage of the study's outputs: what each was computed from, checked before it is used."""
