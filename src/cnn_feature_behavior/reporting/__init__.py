"""Reporting core: the paper's figures, report assembly and top-feature patches."""
