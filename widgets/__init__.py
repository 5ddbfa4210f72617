"""fskit widgets: the Jupyter UI layer (imported as ``fskit.widgets``)."""
