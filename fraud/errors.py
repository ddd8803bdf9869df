"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class FraudError(Exception):
    """An expected failure with a message for a person (bad input, a service that did not start)."""
