"""The error the feature builders raise when the data or settings they are given cannot be used."""


class FeatureInputError(ValueError):
    """The caller's data or settings cannot give features (a table without the column it names,
    a label that is not 0/1, a history too short for one as-of date): a problem with the input,
    not a bug. The message names the offending value and what was expected."""
