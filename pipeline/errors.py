"""What counts as the user's input going wrong, as against the code or a library failing.

Every check the pipeline makes on purpose about the user's data, params or missing prerequisites
raises an :class:`InputError` (the contract of the raw tables, the params file, a stage whose
input is not there yet, a stale as-of date …); the pure packages raise their own
:class:`~features.errors.FeatureInputError` and :class:`~models.errors.ModelInputError`.
:data:`INPUT_ERRORS` gathers the three: the CLI exits 3 (2 for params) on them, and 1 on anything
else (a library's ``ValueError``, an assertion, a bug), with the traceback.
"""

from __future__ import annotations

from features.errors import FeatureInputError
from models.errors import ModelInputError


class InputError(ValueError):
    """The user's data, params or prerequisites cannot be used; the message says what to fix."""


class MissingInput(InputError, FileNotFoundError):
    """A stage's input is not there yet (no training set, no model, no scoring run): the
    message names the command that makes it."""


INPUT_ERRORS: tuple[type[ValueError], ...] = (InputError, FeatureInputError, ModelInputError)
