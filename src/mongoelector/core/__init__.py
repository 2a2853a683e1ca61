"""The pure core: lock and elector state machines with no I/O.

Nothing under this package reads a clock, sleeps, starts a thread or talks to a
store. Drivers feed it the time they read and the results of backend calls,
and it answers with what to do next, which callbacks to fire and when to wake.
"""
