"""scoutlens: long-context retrieval and document analysis around Llama 4 Scout."""

__version__ = "0.1.0"
