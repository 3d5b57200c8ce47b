"""The renewal in dollars: churn, shrink or grow (:mod:`models.renewal.size`)."""
