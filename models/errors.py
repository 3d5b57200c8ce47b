"""The error the estimators raise when the data or settings they are given cannot be used."""


class ModelInputError(ValueError):
    """The caller's data or settings cannot be fitted or evaluated (no labelled snapshot, an
    out-of-time split left empty, a play log no effect can be estimated from): a problem with
    the input, not a bug. The message names the offending value and what was expected."""
