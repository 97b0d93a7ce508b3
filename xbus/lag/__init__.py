"""Consumer lag: in messages and seconds, judged over a window of samples (see model.py)."""
