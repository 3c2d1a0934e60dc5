"""Gate drivers and UAM handoffs: unit tests, and the network-namespace lab the e2e tests share."""
