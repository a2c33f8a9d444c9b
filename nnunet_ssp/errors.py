"""The one exception type for bad user input."""


class InputError(ValueError):
    """Bad input from the user: the message is one sentence naming the file and the problem."""
