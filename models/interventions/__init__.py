"""Which play lifts renewal, for whom, within capacity: effect estimation from the play log,
plan search, portfolio allocation and the randomised holdout."""
