"""FIDO Metadata Service (MDS3): which authenticator models exist, which are compromised,
and which roots their attestation certificates must chain to.

Everything here works on data already in hand (plus one download helper for the CLI);
the HTTP API and the database live elsewhere and use this package, never the reverse.
"""

from __future__ import annotations

from authserver.metadata.mds import (
    COMPROMISED_STATUSES,
    MAX_BLOB_BYTES,
    AuthenticatorInfo,
    MetadataError,
    MetadataStore,
    fetch_blob,
    load_blob,
    load_blob_file,
    normalize_aaguid,
)

__all__ = [
    "COMPROMISED_STATUSES",
    "MAX_BLOB_BYTES",
    "AuthenticatorInfo",
    "MetadataError",
    "MetadataStore",
    "fetch_blob",
    "load_blob",
    "load_blob_file",
    "normalize_aaguid",
]
