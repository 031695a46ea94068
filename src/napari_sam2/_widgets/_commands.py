"""Plugin commands: the SAM 2 widget's actions for the command palette, menus and scripts.

Each takes the viewer and acts through the viewer's SAM 2 widget, docking it first if needed:
    from napari_sam2._widgets import _commands
    _commands.commit(viewer)
"""

from __future__ import annotations

from napari.viewer import Viewer

from ._main import SAM2Widget, widget_for

PLUGIN = "napari-sam2"
WIDGET = "SAM 2"


def sam2_widget(viewer: Viewer) -> SAM2Widget:
    """The viewer's SAM 2 widget, docked now if it is not there yet."""
    widget = widget_for(viewer)
    if widget is None:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
        widget = getattr(widget, "__wrapped__", widget)
    return widget


def load_model(viewer: Viewer) -> None:
    """Load the model chosen in the widget."""
    sam2_widget(viewer).load_model()


def toggle_positive(viewer: Viewer) -> None:
    """Flip the next click (or the selected clicks) between positive and negative."""
    sam2_widget(viewer).toggle_positive()


def commit(viewer: Viewer) -> None:
    """Commit the preview as a new object."""
    sam2_widget(viewer).commit()


def clear_prompts(viewer: Viewer) -> None:
    """Clear the prompts on the current plane."""
    sam2_widget(viewer).clear_prompts()


def undo(viewer: Viewer) -> None:
    """Undo the last change of the output labels."""
    sam2_widget(viewer).undo()


def redo(viewer: Viewer) -> None:
    """Redo the last undone change of the output labels."""
    sam2_widget(viewer).redo()


def next_candidate(viewer: Viewer) -> None:
    """Show the next candidate mask of a single-click preview."""
    sam2_widget(viewer).next_candidate()


def propagate(viewer: Viewer) -> None:
    """Propagate through the stack."""
    sam2_widget(viewer).propagate()


def segment_everything(viewer: Viewer) -> None:
    """Segment everything with the widget's parameters."""
    sam2_widget(viewer).segment_everything()


def cancel(viewer: Viewer) -> None:
    """Cancel the running long jobs."""
    sam2_widget(viewer).cancel()


def save_prompts(viewer: Viewer) -> None:
    """Save the objects and prompts of the stack to a prompts file (asks where)."""
    sam2_widget(viewer).save_prompts()


def load_prompts(viewer: Viewer) -> None:
    """Load a prompts file into the prompt layers (asks which)."""
    sam2_widget(viewer).load_prompts()
