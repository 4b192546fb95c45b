"""Smoothed n-gram estimation, vectorised: counting (``tables``), smoothing (``smoothing``), ARPA
export (``arpa``). ``lmbench.models.ngram`` wraps them as the ``model=ngram`` language model."""
