"""Where generations are kept: the blob store and the ledger, each behind an interface.

``blobs`` and ``ledger`` are the interfaces, ``local`` and ``sqlite`` their
embedded backends; ``layout`` knows where a store is and what its files are
called, and is the one place that opens a backend.
"""
