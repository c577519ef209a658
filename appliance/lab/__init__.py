"""Network-namespace lab for tests and the demo (see :mod:`appliance.lab.api`).

Nothing is imported here so that ``appliance.lab.traffic`` tools start fast inside namespaces.
"""
