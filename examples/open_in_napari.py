"""Open napari with the SAM 2 widget and a synthetic time-lapse (needs a display).

    python examples/open_in_napari.py
"""

import napari

from napari_sam2.synthetic import timelapse

movie, truth, _ = timelapse(n_frames=20, shape=(256, 256), n_cells=12, seed=0)
viewer = napari.Viewer()
viewer.add_image(movie, name="cells")
viewer.add_labels(truth, name="ground truth", visible=False)
viewer.window.add_plugin_dock_widget("napari-sam2")
napari.run()
