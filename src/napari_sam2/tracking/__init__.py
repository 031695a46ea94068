"""Tracking every object of a movie or z-stack automatically: detection, lineage, outputs."""
