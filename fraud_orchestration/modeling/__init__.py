"""Model lifecycle: metrics, training, tuning (pure Python; the assets wire them in)."""
