"""From win probability to what a CS team reads: health 0–100 and band, a unique priority,
drift against training, and the renewal forecast."""
