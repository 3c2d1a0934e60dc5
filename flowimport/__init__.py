"""NetFlow/IPFIX traffic billing through pmacct (nfacctd).

An adapter: it writes the collector's configuration, reads what nfacctd wrote (spool files, or the
memory table through the `pmacct` client), hands batches of per-client byte counts to
``rlm_hotspot.services.flows`` (attribution and rating live there and in the core) and commits one
transaction per batch. Its loop and process are the importer pattern the accounting importer runs too
(``rlm_hotspot.spool_importer``). See docs/netflow.md.
"""
