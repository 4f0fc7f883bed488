"""The error every stage raises for bad input data, at the bottom of the package so that any layer may raise it."""


class DataError(ValueError):
    """Bad input data; the message names the file and the field."""
