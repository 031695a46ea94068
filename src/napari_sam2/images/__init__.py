"""Arrays in and out: reading and writing files, checks, normalisation, model input, coordinates, frame sources, label writing."""
