"""NetFlow/IPFIX traffic billing through pmacct (nfacctd)."""
