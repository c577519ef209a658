"""Helpers of bench/failover_l2.py: the UDP echo responder and the client probe (standalone
scripts run inside lab namespaces), the two HA implementations under test, and the trials."""
