"""claims: tag the sentences of conflict news with the claims they make."""

__version__ = "0.1.0"
