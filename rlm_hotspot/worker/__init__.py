"""The worker: the long-running process that ends the sessions which must end.

Every cycle (one transaction per step): close stale sessions and queue the cuts (see
rlm_hotspot.services.enforcement), claim the due ones, then act outside any transaction — an RFC 5176
Disconnect-Request to the NAS of a RADIUS session (sent in parallel, each retransmitted 3 x 1 s), or
closing the firewall gate of a standalone session — and record each outcome in its own transaction.
A database outage is logged and waited out; SIGTERM ends the loop after the current cycle.
"""
