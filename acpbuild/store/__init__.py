"""Where generations are kept: the blob store and the ledger, each behind an interface."""
