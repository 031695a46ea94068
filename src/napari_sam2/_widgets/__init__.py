"""The napari plugin: dock widgets, sample data and commands.

This subpackage is the only part of napari_sam2 that imports napari, magicgui or Qt; the engine
it drives lives in the rest of the package and never imports it.
"""
