"""``linecheck bench``: the station against the naive loop and the raw engine."""
