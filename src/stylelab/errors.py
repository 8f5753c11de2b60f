"""One family of errors the CLI turns into a one-line message and exit code 2."""


class StylelabError(Exception):
    """Base class: anything a user can fix by changing their input or settings."""


class RecipeError(StylelabError, ValueError):
    """A setting is invalid: unknown name, negative weight, bad value."""


class ImageError(StylelabError):
    """An input image cannot be used: missing, unreadable, truncated, too large."""


class InputTypeError(ImageError, TypeError):
    """An input that is no kind of image at all (None, a number, a dict): a TypeError too."""


class WeightsError(StylelabError):
    """The network weights cannot be found or loaded."""


class DivergedError(StylelabError):
    """The optimisation produced NaN or inf; the message names the knob to change."""


class MemoryLimitError(StylelabError):
    """A run would not fit in the memory free (estimated before it starts, or an allocation failed)."""


class VideoError(StylelabError):
    """A video input or output cannot be used: missing, unreadable, corrupt, too large, or would overwrite a file."""
