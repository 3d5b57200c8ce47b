"""Steps more than one stage (or a stage and the lab) build on: the features of every account
as of a date, and the effect model's fit from the interventions log."""
