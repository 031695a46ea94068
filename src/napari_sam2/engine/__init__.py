"""Inference on top of the network: image predictor, automatic masks, stack tracker, prompts applied, post-processing, precision."""
