"""What talks to the network access servers: the firewall gates of standalone hotspots (`gates`) and the
RFC 5176 client that asks a RADIUS NAS to end a session or apply new limits (`coa`). The portal opens
gates, the worker closes them and sends the RFC 5176 requests; neither reaches the database from here."""
