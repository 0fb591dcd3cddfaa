"""Analyses built on the symbolic and numeric sides: criticality, finite-width corrections."""
