"""Where weights come from: presets, cache, downloads, the Hub, checkpoint files, the built-in model, loading."""
