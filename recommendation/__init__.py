"""NCF (NeuMF) on MovieLens-20M: the recommendation benchmark (see README.md)."""
